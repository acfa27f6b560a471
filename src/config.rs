//! The daemon's configuration file: parsing, validation and defaults.
//!
//! Two stages, as ripgrep does with its flags: [`RawConfig`] is exactly what
//! the TOML file says (unknown keys are refused), and [`Config`] is the
//! resolved, validated configuration the daemon runs on. Every error names
//! the file and the dotted key (`storage.cache_capacity_bytes`) so an
//! installer can fix it without reading code.

use std::fmt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// Where the daemon keeps its state when nothing else says so.
pub const DATA_DIR_DEFAULT: &str = "/var/lib/edgecc";
/// Where the daemon's admin socket lives when nothing else says so
/// (systemd's `RuntimeDirectory=edgecc`).
pub const ADMIN_SOCKET_DEFAULT: &str = "/run/edgecc/admin.sock";
/// sled page cache by default: an edge box has little memory, and sled's own
/// default (1 GiB) would let RSS grow with the backlog.
pub const STORAGE_CACHE_BYTES_DEFAULT: u64 = 16 * 1024 * 1024;
/// Smallest sled cache we accept: below this sled thrashes on every read.
pub const STORAGE_CACHE_BYTES_MIN: u64 = 1024 * 1024;
/// Largest sled cache we accept: more would defeat the point of a bounded RSS.
pub const STORAGE_CACHE_BYTES_MAX: u64 = 1024 * 1024 * 1024;
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
}

/// `[site]` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSite {
    /// Site id; prefixes correlation ids so two boxes never collide at the CRM.
    pub id: Option<String>,
}

/// `[daemon]` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDaemon {
    /// State directory (sled). `--data-dir` and `$STATE_DIRECTORY` win over it.
    pub data_dir: Option<PathBuf>,
    /// Admin unix socket path. `--admin-socket` and `$RUNTIME_DIRECTORY` win.
    pub admin_socket: Option<PathBuf>,
}

/// `[storage]` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawStorage {
    /// sled page cache size in bytes.
    pub cache_capacity_bytes: Option<u64>,
}

/// The resolved configuration.
#[derive(Debug, Clone, Serialize)]
pub struct Config {
    /// The file it came from, for error messages and reload.
    pub file: Option<PathBuf>,
    /// Site id (prefix of correlation ids).
    pub site_id: String,
    /// State directory from the file, if it names one (flags and environment
    /// are applied later, by [`crate::paths`]).
    pub data_dir: Option<PathBuf>,
    /// Admin socket from the file, if it names one.
    pub admin_socket: Option<PathBuf>,
    /// sled cache in bytes.
    pub storage_cache_capacity_bytes: u64,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            file: None,
            site_id: "edge".to_string(),
            data_dir: None,
            admin_socket: None,
            storage_cache_capacity_bytes: STORAGE_CACHE_BYTES_DEFAULT,
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
    pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
        let raw = parse_raw(text, path)?;
        Config::resolve(raw, path)
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
        let cache = raw
            .storage
            .cache_capacity_bytes
            .unwrap_or(STORAGE_CACHE_BYTES_DEFAULT);
        if !(STORAGE_CACHE_BYTES_MIN..=STORAGE_CACHE_BYTES_MAX).contains(&cache) {
            return Err(err(
                "storage.cache_capacity_bytes",
                format!(
                    "{cache} is out of range: use {STORAGE_CACHE_BYTES_MIN} to {STORAGE_CACHE_BYTES_MAX}"
                ),
            ));
        }
        for (key, value) in [
            ("daemon.data_dir", &raw.daemon.data_dir),
            ("daemon.admin_socket", &raw.daemon.admin_socket),
        ] {
            if let Some(p) = value {
                if !p.is_absolute() {
                    return Err(err(key, format!("{} is not an absolute path", p.display())));
                }
            }
        }
        Ok(Config {
            file: Some(path.to_path_buf()),
            site_id,
            data_dir: raw.daemon.data_dir,
            admin_socket: raw.daemon.admin_socket,
            storage_cache_capacity_bytes: cache,
        })
    }
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
        let e = Config::parse("[site]\nid = \"a b\"\n", Path::new("/x/e.toml")).unwrap_err();
        assert_eq!(e.key, "site.id");
        let e =
            Config::parse("[daemon]\ndata_dir = \"rel\"\n", Path::new("/x/e.toml")).unwrap_err();
        assert_eq!(e.key, "daemon.data_dir");
    }
}
