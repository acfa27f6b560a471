//! `[crm.servicenow]` as written ([`ServiceNowConfig`]) and its name
//! checks: the instance, the mode, the credentials (file paths only) and
//! the table and field names of both modes.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::super::transport::{CONNECT_TIMEOUT_MS_DEFAULT, REQUEST_TIMEOUT_MS_DEFAULT};
use crate::net::SettingError;

/// Longest table or field name accepted (ServiceNow's column-name limit).
pub const NAME_BYTES_MAX: usize = 80;
/// Longest field prefix accepted.
pub const PREFIX_BYTES_MAX: usize = 40;

/// How records reach the instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ServiceNowMode {
    /// Import Set staging tables with coalescing transform maps (upserts).
    ImportSet,
    /// The Table API directly: lookup-before-create, PATCH by sys_id.
    Table,
    /// ServiceNow's CCaaS voice-interaction API (OpenFrame): the
    /// interaction created on accept, phone logs and updates PATCHed in.
    Openframe,
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
    /// ServiceNow's API key (token-based authentication): the key from
    /// `api_key_file`, sent as `x-sn-apikey` on every request.
    ApiKey,
    /// OAuth 2 JWT bearer grant (RFC 7523), ServiceNow's inbound "OAuth -
    /// JWT bearer grant": an RS256 assertion signed with `jwt_key_file`
    /// (`iss` and `aud` = `oauth_client_id`, `sub` = `user`, `kid` =
    /// `jwt_kid`, a fresh `jti`, five minutes of `exp`) traded with
    /// `oauth_client_id` and `oauth_client_secret_file` for a token.
    OauthJwtBearer,
}

/// `[crm.servicenow]`: the instance, the mode, the credentials and the
/// table and field names. Secrets are file paths only.
///
/// ```toml
/// [crm.servicenow]
/// instance_url = "https://acme.service-now.com"
/// mode = "openframe"                  # or "import_set", "table"
/// auth = "api_key"                    # or "oauth_client_credentials", "oauth_jwt_bearer", "oauth_password", "basic"
/// api_key_file = "/run/credentials/edgecc.service/servicenow_api_key"
/// # jwt_key_file = "/run/credentials/edgecc.service/servicenow_jwt_key"   # oauth_jwt_bearer
/// # jwt_kid = "edgecc-1"
/// agent_user_field = "user_name"      # sys_user field holding the edgecc agent id
/// caller_user_fields = ["phone", "mobile_phone", "home_phone"]  # sys_user fields matched against the caller's number ([] = off)
/// # awa_queue = "<awa_queue sys_id>"  # default AWA queue for callback work items
/// # service_channel = "<awa_service_channel sys_id>"  # table mode: the interaction's channel
/// # user = "edgecc.integration"       # basic and oauth_password
/// # password_file = "/run/credentials/edgecc.service/servicenow_password"
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
/// table_phone_log = "sn_openframe_phone_log"
/// table_work_item = "awa_work_item"
/// table_correlation_field = "u_edgecc_correlation_id"
/// table_interaction_key_field = "u_edgecc_call_id"
/// table_field_prefix = ""
///
/// [crm.servicenow.awa_queues]         # edgecc queue → awa_queue sys_id (callbacks; table mode's `queue`)
/// # sales = "<awa_queue sys_id>"
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceNowConfig {
    /// The instance's base URL, e.g. `https://acme.service-now.com`.
    pub instance_url: String,
    /// Import Set (upserts, needs staging tables) or Table API.
    #[serde(default = "mode_default")]
    pub mode: ServiceNowMode,
    /// Basic, one of the OAuth 2 grants, or an API key.
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
    /// (a custom string column deploy/servicenow adds: `interaction` and
    /// the phone log do not extend `task`, so they have no
    /// `correlation_id`). Checked in `sys_dictionary` before use.
    #[serde(default = "table_correlation_field_default")]
    pub table_correlation_field: String,
    /// Table mode: the interaction field holding our interaction key (the
    /// call id), used to find the interaction for an update when no sys_id
    /// is stored. Checked in `sys_dictionary` before use.
    #[serde(default = "table_interaction_key_field_default")]
    pub table_interaction_key_field: String,
    /// Table mode, opt-in: when not empty, each key of the record's data is
    /// also sent as a custom column `<prefix><key>` (which must exist on
    /// the table). Empty (the default): only ServiceNow's own fields are
    /// sent ([`super::fields`]).
    #[serde(default)]
    pub table_field_prefix: String,
    /// File holding the API key (`auth = "api_key"`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_key_file: Option<PathBuf>,
    /// `sys_user` field matched against the edgecc agent id to fill an
    /// interaction's `assigned_to` (`user_name` by default; `email` when
    /// agents log in to edgecc with their e-mail address).
    #[serde(default = "agent_user_field_default")]
    pub agent_user_field: String,
    /// `sys_user` fields matched (any of them) against the caller's number
    /// as the PBX gives it, to fill the interaction's `opened_for` and the
    /// phone log's `contact`; empty: no caller lookup.
    #[serde(default = "caller_user_fields_default")]
    pub caller_user_fields: Vec<String>,
    /// sys_id of the default Advanced Work Assignment queue (`awa_queue`)
    /// a callback work item is routed to through the AWA Routing API, so
    /// ServiceNow makes the `awa_work_item` and offers it to an agent; a
    /// call whose edgecc queue has an [`Self::awa_queues`] entry goes there
    /// instead. Neither: openframe mode only notes the callback on the
    /// interaction and table mode creates the row in `table_work_item`
    /// (AWA does not route a row created that way).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub awa_queue: Option<String>,
    /// File holding the PEM RSA private key that signs the JWT bearer
    /// assertion (`auth = "oauth_jwt_bearer"`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwt_key_file: Option<PathBuf>,
    /// The `kid` header of the assertion: the Kid of the JWT verifier map
    /// that holds the matching certificate (optional when the endpoint has
    /// one verifier map).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwt_kid: Option<String>,
    /// Table mode: sys_id of the `awa_service_channel` written into the
    /// interaction's `channel` reference (ServiceNow's phone channel).
    /// Unset: `channel` is not sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_channel: Option<String>,
    /// edgecc queue id → `awa_queue` sys_id: where a callback of a call
    /// of that queue is routed (both AWA modes, before `awa_queue`), and,
    /// in table mode, the interaction's and the work item's `queue`
    /// reference. A queue not listed leaves `queue` unset (logged once per
    /// queue).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub awa_queues: BTreeMap<String, String>,
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
    "sn_openframe_phone_log".into()
}
fn table_work_item_default() -> String {
    "awa_work_item".into()
}
fn table_correlation_field_default() -> String {
    "u_edgecc_correlation_id".into()
}
fn table_interaction_key_field_default() -> String {
    "u_edgecc_call_id".into()
}
fn agent_user_field_default() -> String {
    "user_name".into()
}
fn caller_user_fields_default() -> Vec<String> {
    ["phone", "mobile_phone", "home_phone"]
        .map(String::from)
        .to_vec()
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
            api_key_file: None,
            agent_user_field: agent_user_field_default(),
            caller_user_fields: caller_user_fields_default(),
            awa_queue: None,
            jwt_key_file: None,
            jwt_kid: None,
            service_channel: None,
            awa_queues: BTreeMap::new(),
        }
    }
}

/// Checks a ServiceNow table/field name (or prefix when `prefix`).
pub(super) fn check_name(key: &str, name: &str, prefix: bool) -> Result<(), SettingError> {
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
        Err(SettingError::new(
            &format!("crm.servicenow.{key}"),
            format!("`{name}` must be 1..={max} characters of a-z, 0-9 and _"),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Names are checked and the errors name the key; omitted keys take
    /// their defaults; unknown keys are refused.
    #[test]
    fn names_and_defaults() {
        let e = check_name("table_work_item", "Bad Table", false).unwrap_err();
        assert_eq!(e.key, "crm.servicenow.table_work_item");
        assert!(check_name("table_field_prefix", "", true).is_ok());
        assert!(check_name("table_work_item", "", false).is_err());
        let parsed: ServiceNowConfig =
            toml::from_str("instance_url = \"https://x\"\nmode = \"table\"").unwrap();
        assert_eq!(parsed.mode, ServiceNowMode::Table);
        assert_eq!(parsed.table_phone_log, "sn_openframe_phone_log");
        assert!(
            toml::from_str::<ServiceNowConfig>("instance_url = \"x\"\npassword = \"p\"").is_err()
        );
    }
}
