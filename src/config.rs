//! The daemon's configuration file: parsing, validation and defaults.
//!
//! Two stages, as ripgrep does with its flags: [`RawConfig`] is exactly what
//! the TOML file says (unknown keys are refused), and [`Config`] is the
//! resolved, validated configuration the daemon runs on. Every error names
//! the file and the dotted key (`storage.cache_capacity_bytes`) so an
//! installer can fix it without reading code.
//!
//! Each wing owns its section (the raw type, its checks and defaults) and
//! answers (dotted key, message); this module assembles the file and puts
//! the file's name on the error: `[storage]` in [`crate::storage_config`],
//! `[daemon]` in [`crate::ops::daemon_config`], `[pbx]` in [`crate::pbx`],
//! `[http]` and `[[users]]` in [`crate::http::config`]; `[site]` and
//! `[crm]` are resolved here.

use std::fmt;
use std::path::{Path, PathBuf};

use edgecc_actors::config::{
    AgentConfig, QueueConfig, ReasonCodeConfig, RoutingConfig, TimersConfig,
};
use edgecc_actors::ContactCenterConfig;
use serde::{Deserialize, Serialize};

use crate::crm::sync::SyncConfig;
use crate::http::config::{check_http, check_users, HttpConfig, UserConfig};
use crate::ops::daemon_config::RawDaemon;
use crate::pbx::{PbxKind, RawPbx};
use crate::storage_config::{RawStorage, StorageSettings};

/// Longest site id: it prefixes every correlation id sent to the CRM.
pub const SITE_ID_LEN_MAX: usize = 32;

/// A configuration problem, naming the file and the key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The file the value came from (or `<defaults>`).
    pub file: PathBuf,
    /// The dotted key path, e.g. `storage.cache_capacity_bytes`; empty when the
    /// whole file is at fault (unreadable, not TOML).
    pub key: String,
    /// What is wrong, in a sentence.
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.key.is_empty() {
            write!(f, "{}: {}", self.file.display(), self.message)
        } else {
            write!(
                f,
                "{}: key `{}`: {}",
                self.file.display(),
                self.key,
                self.message
            )
        }
    }
}

impl std::error::Error for ConfigError {}

/// The file as written. Every section is optional; unknown keys are errors.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    /// `[site]`: who this box is.
    #[serde(default)]
    pub site: RawSite,
    /// `[daemon]`: paths and process settings.
    #[serde(default)]
    pub daemon: RawDaemon,
    /// `[storage]`: the sled outbox.
    #[serde(default)]
    pub storage: RawStorage,
    /// `[pbx]`: which PBX adapter.
    #[serde(default)]
    pub pbx: RawPbx,
    /// `[crm]`: which CRM, and how to deliver to it.
    #[serde(default)]
    pub crm: RawCrm,
    /// `[timers]`: offer timeout, reject delay, RONA.
    #[serde(default)]
    pub timers: TimersConfig,
    /// `[routing]`: shared routing options.
    #[serde(default)]
    pub routing: RoutingConfig,
    /// `[[reason_codes]]`: Not Ready reasons agents may pick.
    #[serde(default)]
    pub reason_codes: Vec<ReasonCodeConfig>,
    /// `[[queues]]`.
    #[serde(default)]
    pub queues: Vec<QueueConfig>,
    /// `[[agents]]`.
    #[serde(default)]
    pub agents: Vec<AgentConfig>,
    /// `[[sticky_customers]]`: caller numbers pinned to their own agent.
    #[serde(default)]
    pub sticky_customers: Vec<edgecc_actors::sticky::StickyCustomerConfig>,
    /// `[http]`: the API, WebSocket and web UI listener.
    #[serde(default)]
    pub http: HttpConfig,
    /// `[[users]]`: who may log in to the API and UI, with which role.
    #[serde(default)]
    pub users: Vec<UserConfig>,
    /// `[simulate]`: simulated agents' answer delays and the thresholds of
    /// `edgecc simulate` (the daemon ignores it).
    #[serde(default)]
    pub simulate: crate::simulate::settings::RawSimulate,
    /// `[reports]`: service-level thresholds and call history retention.
    #[serde(default)]
    pub reports: crate::reports::config::RawReports,
}

/// `[crm]` as written: the adapter and the sync worker's settings.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCrm {
    /// `none` (records wait in the outbox), `webhook` or `servicenow`.
    pub kind: Option<String>,
    /// Requests in flight at once.
    pub concurrency: Option<usize>,
    /// First retry delay bound, ms.
    pub backoff_base_ms: Option<u64>,
    /// Largest retry delay bound, ms.
    pub backoff_cap_ms: Option<u64>,
    /// Consecutive CRM-down failures that open the breaker.
    pub breaker_failures: Option<u32>,
    /// Probe interval while the breaker is open, ms.
    pub breaker_probe_interval_ms: Option<u64>,
    /// Records older than this are parked in the dead letters, ms.
    pub record_lifetime_ms: Option<u64>,
    /// `[crm.webhook]`.
    pub webhook: Option<crate::crm::webhook::WebhookConfig>,
    /// `[crm.servicenow]`.
    pub servicenow: Option<crate::crm::servicenow::ServiceNowConfig>,
}

/// `[site]` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSite {
    /// Site id; prefixes correlation ids so two boxes never collide at the CRM.
    pub id: Option<String>,
    /// The site's IANA time zone (`Europe/Berlin`): an agent's "today"
    /// starts at its midnight. UTC when unset.
    pub time_zone: Option<String>,
}

/// The resolved configuration.
#[derive(Debug, Clone, Serialize)]
pub struct Config {
    /// The file it came from, for error messages and reload.
    pub file: Option<PathBuf>,
    /// Site id (prefix of correlation ids).
    pub site_id: String,
    /// State directory from the file, if it names one (flags and environment
    /// are applied later, by [`crate::ops::paths`]).
    pub data_dir: Option<PathBuf>,
    /// Admin socket from the file, if it names one.
    pub admin_socket: Option<PathBuf>,
    /// sled cache in bytes.
    pub storage_cache_capacity_bytes: u64,
    /// Write-ahead log size in bytes.
    pub storage_wal_bytes: u64,
    /// The PBX adapter.
    pub pbx: PbxKind,
    /// The CRM adapter and sync settings.
    pub crm: CrmSettings,
    /// Queues, agents, reason codes, timers (validated).
    pub contact_center: ContactCenterConfig,
    /// The HTTP listener.
    pub http: HttpConfig,
    /// Logins.
    pub users: Vec<UserConfig>,
    /// `[simulate]`, for `edgecc simulate`.
    pub simulate: crate::simulate::settings::SimulateSettings,
    /// Reports and call history retention.
    pub reports: crate::reports::config::ReportSettings,
}

/// Which CRM edgecc writes to, and how.
#[derive(Debug, Clone, Serialize)]
pub struct CrmSettings {
    /// The adapter.
    pub adapter: CrmAdapterConfig,
    /// The sync worker's settings.
    pub sync: SyncConfig,
}

/// The CRM adapter with its settings.
// One value per process: the variants' size difference costs nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum CrmAdapterConfig {
    /// No CRM: records wait in the outbox (visible with `edgecc outbox`).
    None,
    /// POST JSON to a URL.
    Webhook(crate::crm::webhook::WebhookConfig),
    /// ServiceNow Import Set or Table API.
    Servicenow(crate::crm::servicenow::ServiceNowConfig),
}

impl Default for Config {
    fn default() -> Self {
        Config {
            file: None,
            site_id: "edge".to_string(),
            data_dir: None,
            admin_socket: None,
            storage_cache_capacity_bytes: StorageSettings::default().cache_capacity_bytes,
            storage_wal_bytes: StorageSettings::default().wal_bytes,
            pbx: PbxKind::Sim,
            crm: CrmSettings {
                adapter: CrmAdapterConfig::None,
                sync: SyncConfig::default(),
            },
            contact_center: ContactCenterConfig::default(),
            http: HttpConfig::default(),
            users: Vec::new(),
            simulate: Default::default(),
            reports: Default::default(),
        }
    }
}

impl Config {
    /// Reads and validates `path`.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            file: path.to_path_buf(),
            key: String::new(),
            message: format!("cannot read the file: {e}"),
        })?;
        Config::parse(&text, path)
    }

    /// Parses and validates `text`, reporting errors against `path`.
    /// Secret files given as bare credential names are looked up in
    /// `$CREDENTIALS_DIRECTORY` (see [`resolve_credential`]).
    pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
        let credentials = std::env::var_os(CREDENTIALS_DIRECTORY_ENV).map(PathBuf::from);
        Config::parse_with_credentials(text, path, credentials.as_deref())
    }

    /// [`Config::parse`] with the credentials directory given explicitly
    /// (`edgecc check-config --credentials-dir`).
    pub fn parse_with_credentials(
        text: &str,
        path: &Path,
        credentials: Option<&Path>,
    ) -> Result<Config, ConfigError> {
        let mut raw = parse_raw(text, path)?;
        // The ARI password file is read while resolving: name it first.
        if let Some(file) = raw.pbx.ari.as_mut().and_then(|a| a.password_file.as_mut()) {
            *file = resolve_credential(file, credentials).map_err(|message| ConfigError {
                file: path.to_path_buf(),
                key: "pbx.ari.password_file".to_string(),
                message,
            })?;
        }
        let mut config = Config::resolve(raw, path)?;
        config
            .resolve_credentials(credentials)
            .map_err(|(key, message)| ConfigError {
                file: path.to_path_buf(),
                key,
                message,
            })?;
        Ok(config)
    }

    /// Every secret file the config names, with its dotted key: what
    /// `check-config` checks and systemd's `LoadCredential=` provides.
    pub fn secret_files(&self) -> Vec<(String, PathBuf)> {
        let mut out = Vec::new();
        for (key, path) in self.secret_file_slots_ref() {
            if let Some(p) = path {
                out.push((key.to_string(), p.clone()));
            }
        }
        out
    }

    fn secret_file_slots_ref(&self) -> Vec<(&'static str, &Option<PathBuf>)> {
        let mut slots = vec![
            ("http.tls_cert_file", &self.http.tls_cert_file),
            ("http.tls_key_file", &self.http.tls_key_file),
        ];
        match &self.crm.adapter {
            CrmAdapterConfig::None => {}
            CrmAdapterConfig::Webhook(w) => slots.push(("crm.webhook.secret_file", &w.secret_file)),
            CrmAdapterConfig::Servicenow(s) => {
                slots.push(("crm.servicenow.password_file", &s.password_file));
                slots.push((
                    "crm.servicenow.oauth_client_secret_file",
                    &s.oauth_client_secret_file,
                ));
                slots.push(("crm.servicenow.api_key_file", &s.api_key_file));
                slots.push(("crm.servicenow.jwt_key_file", &s.jwt_key_file));
            }
        }
        slots
    }

    /// Turns bare credential names into paths in `credentials`.
    fn resolve_credentials(&mut self, credentials: Option<&Path>) -> Result<(), (String, String)> {
        let mut slots: Vec<(&'static str, &mut Option<PathBuf>)> = vec![
            ("http.tls_cert_file", &mut self.http.tls_cert_file),
            ("http.tls_key_file", &mut self.http.tls_key_file),
        ];
        match &mut self.crm.adapter {
            CrmAdapterConfig::None => {}
            CrmAdapterConfig::Webhook(w) => {
                slots.push(("crm.webhook.secret_file", &mut w.secret_file))
            }
            CrmAdapterConfig::Servicenow(s) => {
                slots.push(("crm.servicenow.password_file", &mut s.password_file));
                slots.push((
                    "crm.servicenow.oauth_client_secret_file",
                    &mut s.oauth_client_secret_file,
                ));
                slots.push(("crm.servicenow.api_key_file", &mut s.api_key_file));
                slots.push(("crm.servicenow.jwt_key_file", &mut s.jwt_key_file));
            }
        }
        for (key, slot) in slots {
            if let Some(path) = slot.as_mut() {
                *path = resolve_credential(path, credentials).map_err(|m| (key.to_string(), m))?;
            }
        }
        Ok(())
    }

    /// The configuration as TOML with every secret-looking value replaced
    /// by `<redacted>`: passwords, hashes, tokens, keys, and credentials
    /// inside URLs. Paths of secret files are kept (they are not secrets).
    pub fn redacted(&self) -> Result<toml::Value, String> {
        let mut value = toml::Value::try_from(self).map_err(|e| e.to_string())?;
        redact(&mut value, "");
        Ok(value)
    }

    /// The second stage: checks values and fills defaults.
    fn resolve(raw: RawConfig, path: &Path) -> Result<Config, ConfigError> {
        let err = |key: &str, message: String| ConfigError {
            file: path.to_path_buf(),
            key: key.to_string(),
            message,
        };
        let defaults = Config::default();
        let site_id = raw.site.id.unwrap_or(defaults.site_id);
        if site_id.is_empty()
            || site_id.len() > SITE_ID_LEN_MAX
            || !site_id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return Err(err(
                "site.id",
                format!(
                    "{site_id:?} is not a site id: use 1 to {SITE_ID_LEN_MAX} letters, digits, '-' or '_'"
                ),
            ));
        }
        let storage = crate::storage_config::resolve(&raw.storage)
            .map_err(|(key, message)| err(&key, message))?;
        crate::ops::daemon_config::check(&raw.daemon)
            .map_err(|(key, message)| err(&key, message))?;
        let pbx = crate::pbx::resolve(&raw.pbx).map_err(|(key, message)| err(&key, message))?;
        let crm = resolve_crm(raw.crm).map_err(|(key, message)| err(&key, message))?;
        let contact_center = ContactCenterConfig {
            site_id: site_id.clone(),
            timers: raw.timers,
            routing: raw.routing,
            reason_codes: raw.reason_codes,
            queues: raw.queues,
            agents: raw.agents,
            sticky_customers: raw.sticky_customers,
        };
        if let Err(errors) = contact_center.validate() {
            // Report the first; `check-config` is run again after a fix.
            let first = &errors[0];
            let key = if first.path == "site_id" {
                "site.id".to_string()
            } else {
                first.path.clone()
            };
            let more = match errors.len() {
                1 => String::new(),
                n => format!(" (and {} more problems)", n - 1),
            };
            return Err(err(&key, format!("{}{more}", first.message)));
        }
        check_http(&raw.http).map_err(|(key, message)| err(&key, message))?;
        check_users(&raw.users, &contact_center).map_err(|(key, message)| err(&key, message))?;
        let simulate = crate::simulate::settings::resolve(&raw.simulate, &contact_center)
            .map_err(|(key, message)| err(&key, message))?;
        let mut reports = crate::reports::config::resolve(&raw.reports, &contact_center)
            .map_err(|(key, message)| err(&key, message))?;
        reports.time_zone = crate::reports::today::check_zone(raw.site.time_zone.as_deref())
            .map_err(|message| err("site.time_zone", message))?;
        Ok(Config {
            http: raw.http,
            users: raw.users,
            file: Some(path.to_path_buf()),
            site_id,
            data_dir: raw.daemon.data_dir,
            admin_socket: raw.daemon.admin_socket,
            storage_cache_capacity_bytes: storage.cache_capacity_bytes,
            storage_wal_bytes: storage.wal_bytes,
            pbx,
            crm,
            contact_center,
            simulate,
            reports,
        })
    }
}

/// The environment variable systemd sets to the unit's credentials
/// directory (`LoadCredential=`).
pub const CREDENTIALS_DIRECTORY_ENV: &str = "CREDENTIALS_DIRECTORY";

/// What stands for a secret in `check-config`'s output.
pub const REDACTED: &str = "<redacted>";

/// A secret file path from the config: an absolute path is used as is; a
/// bare name (`edgecc.webhook_secret`) is a systemd credential, read from
/// `credentials` (`$CREDENTIALS_DIRECTORY`). Anything else is refused.
pub fn resolve_credential(path: &Path, credentials: Option<&Path>) -> Result<PathBuf, String> {
    if path.is_absolute() {
        return Ok(path.to_path_buf());
    }
    let bare = path.components().count() == 1
        && matches!(
            path.components().next(),
            Some(std::path::Component::Normal(_))
        );
    if !bare {
        return Err(format!(
            "{} is a relative path: give an absolute path, or a bare credential name",
            path.display()
        ));
    }
    match credentials {
        Some(dir) => Ok(dir.join(path)),
        None => Err(format!(
            "names the systemd credential {:?}, but ${CREDENTIALS_DIRECTORY_ENV} is not set: \
             run under systemd (LoadCredential={0}), pass --credentials-dir to check-config, \
             or give an absolute path",
            path.display().to_string()
        )),
    }
}

/// Whether a config key holds a secret value (not a path to one).
fn is_secret_key(key: &str) -> bool {
    let key = key.to_ascii_lowercase();
    if key.ends_with("_file") || key.ends_with("_path") || key.ends_with("_dir") {
        return false;
    }
    [
        "password",
        "secret",
        "token",
        "api_key",
        "apikey",
        "passphrase",
        "private_key",
    ]
    .iter()
    .any(|w| key.contains(w))
}

/// Redacts secret-looking values in place (see [`Config::redacted`]).
fn redact(value: &mut toml::Value, key: &str) {
    match value {
        toml::Value::String(s) => {
            if is_secret_key(key) {
                *s = REDACTED.to_string();
            } else if let Some(clean) = redact_url(s) {
                *s = clean;
            }
        }
        toml::Value::Table(t) => {
            for (k, v) in t.iter_mut() {
                redact(v, k);
            }
        }
        toml::Value::Array(a) => {
            for v in a {
                redact(v, key);
            }
        }
        _ => {}
    }
}

/// A URL with its user info and secret-looking query values redacted;
/// `None` when `s` is not a URL or holds nothing to hide.
fn redact_url(s: &str) -> Option<String> {
    let (scheme, rest) = s.split_once("://")?;
    let (authority, tail) = match rest.find(['/', '?', '#']) {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    let mut changed = false;
    let authority = match authority.rsplit_once('@') {
        Some((_, host)) => {
            changed = true;
            format!("{REDACTED}@{host}")
        }
        None => authority.to_string(),
    };
    let tail = match tail.split_once('?') {
        Some((path, query)) => {
            let (query, fragment) = match query.split_once('#') {
                Some((q, f)) => (q, Some(f)),
                None => (query, None),
            };
            let pairs: Vec<String> = query
                .split('&')
                .map(|pair| match pair.split_once('=') {
                    Some((k, _))
                        if is_secret_key(k)
                            || k.eq_ignore_ascii_case("key")
                            || k.eq_ignore_ascii_case("sig") =>
                    {
                        changed = true;
                        format!("{k}={REDACTED}")
                    }
                    _ => pair.to_string(),
                })
                .collect();
            let mut t = format!("{path}?{}", pairs.join("&"));
            if let Some(f) = fragment {
                t.push('#');
                t.push_str(f);
            }
            t
        }
        None => tail.to_string(),
    };
    changed.then(|| format!("{scheme}://{authority}{tail}"))
}

/// `[crm]`: the adapter named by `kind` must have its table, and only it.
fn resolve_crm(raw: RawCrm) -> Result<CrmSettings, (String, String)> {
    let d = SyncConfig::default();
    let sync = SyncConfig {
        concurrency: raw.concurrency.unwrap_or(d.concurrency),
        backoff_base_ms: raw.backoff_base_ms.unwrap_or(d.backoff_base_ms),
        backoff_cap_ms: raw.backoff_cap_ms.unwrap_or(d.backoff_cap_ms),
        breaker_failures: raw.breaker_failures.unwrap_or(d.breaker_failures),
        breaker_probe_interval_ms: raw
            .breaker_probe_interval_ms
            .unwrap_or(d.breaker_probe_interval_ms),
        record_lifetime_ms: raw.record_lifetime_ms.unwrap_or(d.record_lifetime_ms),
    };
    sync.validate()?;
    let missing = |table: &str| {
        Err((
            "crm.kind".to_string(),
            format!("kind = {table:?} needs a [crm.{table}] table"),
        ))
    };
    let kind = raw.kind.as_deref().unwrap_or("none");
    for (table, present) in [
        ("webhook", raw.webhook.is_some()),
        ("servicenow", raw.servicenow.is_some()),
    ] {
        if present && kind != table {
            return Err((
                format!("crm.{table}"),
                format!(
                    "is set but crm.kind is {kind:?}: set kind = {table:?} to use it, or remove the table"
                ),
            ));
        }
    }
    let adapter = match raw.kind.as_deref() {
        None | Some("none") => CrmAdapterConfig::None,
        Some("webhook") => match raw.webhook {
            Some(w) => CrmAdapterConfig::Webhook(w),
            None => return missing("webhook"),
        },
        Some("servicenow") => match raw.servicenow {
            Some(s) => CrmAdapterConfig::Servicenow(s),
            None => return missing("servicenow"),
        },
        Some(other) => {
            return Err((
                "crm.kind".to_string(),
                format!(
                    "{other:?} is not a CRM adapter: use \"none\", \"webhook\" or \"servicenow\""
                ),
            ))
        }
    };
    let checked = match &adapter {
        CrmAdapterConfig::None => Ok(()),
        CrmAdapterConfig::Webhook(w) => crate::crm::webhook::WebhookAdapter::check(w),
        CrmAdapterConfig::Servicenow(s) => crate::crm::servicenow::ServiceNowAdapter::check(s),
    };
    checked.map_err(|e| (e.key, e.message))?;
    Ok(CrmSettings { adapter, sync })
}

/// The first stage: TOML to [`RawConfig`], with the dotted path of the key
/// at fault and the line it is on.
fn parse_raw(text: &str, path: &Path) -> Result<RawConfig, ConfigError> {
    let deserializer = toml::Deserializer::new(text);
    serde_path_to_error::deserialize::<_, RawConfig>(deserializer).map_err(|e| {
        let key = e.path().to_string();
        let inner = e.into_inner();
        let key = if key == "." { String::new() } else { key };
        let line = key_line(text, &key).or_else(|| {
            inner
                .span()
                .map(|s| text[..s.start.min(text.len())].lines().count().max(1))
        });
        let message = inner.message().trim().to_string();
        ConfigError {
            file: path.to_path_buf(),
            key,
            message: match line {
                Some(l) => format!("{message} (line {l})"),
                None => message,
            },
        }
    })
}

/// The 1-based line where the dotted `key` is set: its last segment as a
/// `name = …` line inside the table its other segments name (or a table
/// header of that name). `None` when it cannot be found.
fn key_line(text: &str, key: &str) -> Option<usize> {
    let (table, name) = match key.rsplit_once('.') {
        Some((t, n)) => (t, n),
        None => ("", key),
    };
    let mut current = String::new();
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if let Some(header) = line.strip_prefix('[') {
            let header = header.trim_start_matches('[');
            let header = header.split(']').next().unwrap_or("").trim();
            if header == key {
                return Some(i + 1);
            }
            current = header.to_string();
            continue;
        }
        let Some((lhs, _)) = line.split_once('=') else {
            continue;
        };
        if current == table && lhs.trim().trim_matches('"') == name {
            return Some(i + 1);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage_config::STORAGE_CACHE_BYTES_DEFAULT;

    /// An empty file is a valid config: everything has a default.
    #[test]
    fn empty_file_gives_defaults() {
        let c = Config::parse("", Path::new("/etc/edgecc/edgecc.toml")).unwrap();
        assert_eq!(c.site_id, "edge");
        assert_eq!(c.storage_cache_capacity_bytes, STORAGE_CACHE_BYTES_DEFAULT);
    }

    /// A misspelt key is refused, naming the file, the section and the key.
    #[test]
    fn unknown_key_names_file_and_key() {
        let e = Config::parse("[storage]\ncache_bytes = 5\n", Path::new("/x/e.toml")).unwrap_err();
        let s = e.to_string();
        assert!(s.starts_with("/x/e.toml: "), "{s}");
        assert!(s.contains("cache_bytes"), "{s}");
        assert!(s.contains("line 2"), "{s}");
    }

    /// A value of the wrong type names its dotted key.
    #[test]
    fn wrong_type_names_dotted_key() {
        let e = Config::parse(
            "[storage]\ncache_capacity_bytes = \"big\"\n",
            Path::new("/x/e.toml"),
        )
        .unwrap_err();
        assert_eq!(e.key, "storage.cache_capacity_bytes");
    }

    /// A value out of range names its key and the allowed range.
    #[test]
    fn out_of_range_names_key() {
        let e = Config::parse(
            "[storage]\ncache_capacity_bytes = 10\n",
            Path::new("/x/e.toml"),
        )
        .unwrap_err();
        assert_eq!(e.key, "storage.cache_capacity_bytes");
        assert!(e.message.contains("out of range"));
        let e = Config::parse("[storage]\nwal_bytes = 4096\n", Path::new("/x/e.toml")).unwrap_err();
        assert_eq!(e.key, "storage.wal_bytes");
        assert!(e.message.contains("out of range"), "{}", e.message);
        let e = Config::parse("[site]\nid = \"a b\"\n", Path::new("/x/e.toml")).unwrap_err();
        assert_eq!(e.key, "site.id");
        let e =
            Config::parse("[daemon]\ndata_dir = \"rel\"\n", Path::new("/x/e.toml")).unwrap_err();
        assert_eq!(e.key, "daemon.data_dir");
    }

    /// A CRM table without its `kind` is refused rather than ignored, and
    /// the adapter's own settings are checked at load (`check-config`
    /// too), naming the key and the file.
    #[test]
    fn crm_tables_and_settings_are_checked_at_load() {
        let f = Path::new("/x/e.toml");
        let e = Config::parse("[crm.webhook]\nurl = \"https://crm/x\"\n", f).unwrap_err();
        assert_eq!(e.key, "crm.webhook");
        assert!(e.message.contains("crm.kind"), "{}", e.message);
        let e = Config::parse(
            "[crm]\nkind = \"webhook\"\n[crm.servicenow]\ninstance_url = \"https://x\"\n",
            f,
        )
        .unwrap_err();
        assert_eq!(e.key, "crm.servicenow", "{e}");
        let e = Config::parse(
            "[crm]\nkind = \"webhook\"\n[crm.webhook]\nurl = \"https://crm/x\"\nbatch_max = 0\n",
            f,
        )
        .unwrap_err();
        assert_eq!(e.key, "crm.webhook.batch_max");
        assert!(e.to_string().starts_with("/x/e.toml: "), "{e}");
        let e = Config::parse(
            "[crm]\nkind = \"webhook\"\n[crm.webhook]\nurl = \"ftp://crm/x\"\n",
            f,
        )
        .unwrap_err();
        assert_eq!(e.key, "crm.webhook.url");
        let ok = Config::parse(
            "[crm]\nkind = \"webhook\"\n[crm.webhook]\nurl = \"https://crm/x\"\n",
            f,
        );
        assert!(ok.is_ok(), "{:?}", ok.err());
    }

    /// Bare credential names resolve in the credentials directory;
    /// absolute paths stay; anything else is refused.
    #[test]
    fn credential_names_resolve_in_the_credentials_directory() {
        let creds = Path::new("/run/credentials/edgecc.service");
        assert_eq!(
            resolve_credential(Path::new("edgecc.tls_key"), Some(creds)).unwrap(),
            creds.join("edgecc.tls_key")
        );
        assert_eq!(
            resolve_credential(Path::new("/etc/edgecc/key.pem"), None).unwrap(),
            Path::new("/etc/edgecc/key.pem")
        );
        assert!(resolve_credential(Path::new("edgecc.tls_key"), None).is_err());
        assert!(resolve_credential(Path::new("a/b"), Some(creds)).is_err());
        assert!(resolve_credential(Path::new("../x"), Some(creds)).is_err());
        let c = Config::parse_with_credentials(
            "[http]\ntls_cert_file = \"edgecc.tls_cert\"\ntls_key_file = \"edgecc.tls_key\"\n",
            Path::new("/x/e.toml"),
            Some(creds),
        )
        .unwrap();
        assert_eq!(c.http.tls_key_file, Some(creds.join("edgecc.tls_key")));
        let e = Config::parse_with_credentials(
            "[http]\ntls_cert_file = \"edgecc.tls_cert\"\ntls_key_file = \"k\"\n",
            Path::new("/x/e.toml"),
            None,
        )
        .unwrap_err();
        assert_eq!(e.key, "http.tls_cert_file");
    }

    /// Secret values are redacted wherever they are; paths and ordinary
    /// values are not.
    #[test]
    fn redaction_hides_secrets_only() {
        let mut v: toml::Value = toml::from_str(
            r#"
password = "p"
password_hash = "$argon2id$x"
token_ttl_ms = 5
api_token = "t"
secret_file = "/run/credentials/x"
url = "https://u:p@host:8443/path?key=k&token=t&q=1#frag"
plain = "https://host/path?q=1"
[nested]
oauth_client_secret = "s"
list = [{ password = "p2" }]
"#,
        )
        .unwrap();
        redact(&mut v, "");
        let t = toml::to_string(&v).unwrap();
        for gone in [
            "\"p\"", "argon2id", "\"t\"", "\"s\"", "p2", "u:p@", "key=k", "token=t&",
        ] {
            assert!(!t.contains(gone), "{gone} in {t}");
        }
        assert!(t.contains("token_ttl_ms = 5"), "{t}");
        assert!(t.contains("secret_file = \"/run/credentials/x\""), "{t}");
        assert!(
            t.contains(
                "https://<redacted>@host:8443/path?key=<redacted>&token=<redacted>&q=1#frag"
            ),
            "{t}"
        );
        assert!(t.contains("plain = \"https://host/path?q=1\""), "{t}");
    }

    /// `kind = "ari"` needs its table, which is checked key by key; the
    /// table alone without the kind is refused.
    #[test]
    fn pbx_ari_is_checked() {
        let f = Path::new("/x/e.toml");
        let e = Config::parse("[pbx]\nkind = \"ari\"\n", f).unwrap_err();
        assert_eq!(e.key, "pbx.kind");
        let ok = "[pbx]\nkind = \"ari\"\n[pbx.ari]\nurl = \"http://127.0.0.1:8088/ari\"\nuser = \"edgecc\"\npassword = \"s\"\n";
        match Config::parse(ok, f).unwrap().pbx {
            PbxKind::Ari(a) => assert_eq!(a.app, "edgecc"),
            other => panic!("{other:?}"),
        }
        let e = Config::parse(&ok.replace("user", "usr"), f).unwrap_err();
        assert_eq!(e.key, "pbx.ari.usr");
        let e = Config::parse(
            &ok.replace("8088/ari", "8088/ari\"\nrequest_timeout_ms = 0\n#"),
            f,
        )
        .unwrap_err();
        assert_eq!(e.key, "pbx.ari.request_timeout_ms");
        let e = Config::parse(&ok.replace("kind = \"ari\"", "kind = \"sim\""), f).unwrap_err();
        assert_eq!(e.key, "pbx.ari");
        // A bare credential name for the ARI password resolves in the
        // credentials directory (LoadCredential=edgecc.ari_password).
        let creds = tempfile::tempdir().unwrap();
        std::fs::write(creds.path().join("edgecc.ari_password"), "from-cred\n").unwrap();
        let text = ok.replace(
            "password = \"s\"",
            "password_file = \"edgecc.ari_password\"",
        );
        match Config::parse_with_credentials(&text, f, Some(creds.path()))
            .unwrap()
            .pbx
        {
            PbxKind::Ari(a) => assert_eq!(a.password, "from-cred"),
            other => panic!("{other:?}"),
        }
        let e = Config::parse_with_credentials(&text, f, None).unwrap_err();
        assert_eq!(e.key, "pbx.ari.password_file");
    }
}
