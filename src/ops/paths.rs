//! Where the daemon's files are: the data directory and the admin socket.
//!
//! One rule, used by the daemon and by every CLI command, so both always
//! agree: an explicit flag wins, then systemd's environment
//! (`$STATE_DIRECTORY`, `$RUNTIME_DIRECTORY`), then the config file, then
//! the built-in default.

use std::path::{Path, PathBuf};

use crate::config::Config;
use crate::ops::daemon_config::{ADMIN_SOCKET_DEFAULT, DATA_DIR_DEFAULT};

/// File name of the admin socket inside the runtime directory.
pub const ADMIN_SOCKET_NAME: &str = "admin.sock";

/// The data directory: `--data-dir`, else `$STATE_DIRECTORY`, else the
/// config's `daemon.data_dir`, else `/var/lib/edgecc`.
pub fn data_dir(flag: Option<&Path>, config: &Config) -> PathBuf {
    if let Some(p) = flag {
        return p.to_path_buf();
    }
    if let Some(p) = first_env_path("STATE_DIRECTORY") {
        return p;
    }
    config
        .data_dir
        .clone()
        .unwrap_or_else(|| PathBuf::from(DATA_DIR_DEFAULT))
}

/// The admin socket: `--admin-socket`, else `$RUNTIME_DIRECTORY/admin.sock`,
/// else the config's `daemon.admin_socket`, else `/run/edgecc/admin.sock`.
pub fn admin_socket(flag: Option<&Path>, config: &Config) -> PathBuf {
    if let Some(p) = flag {
        return p.to_path_buf();
    }
    if let Some(p) = first_env_path("RUNTIME_DIRECTORY") {
        return p.join(ADMIN_SOCKET_NAME);
    }
    config
        .admin_socket
        .clone()
        .unwrap_or_else(|| PathBuf::from(ADMIN_SOCKET_DEFAULT))
}

/// systemd sets `STATE_DIRECTORY` to a colon-separated list when a unit
/// names several; ours names one, and the first is ours.
fn first_env_path(name: &str) -> Option<PathBuf> {
    let value = std::env::var_os(name)?;
    let value = value.to_string_lossy().into_owned();
    let first = value.split(':').next()?.trim();
    if first.is_empty() {
        None
    } else {
        Some(PathBuf::from(first))
    }
}
