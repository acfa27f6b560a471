//! `[daemon]`: where the daemon's files are, as the config file writes
//! them (absolute paths only), and the built-in defaults. The file as a
//! whole is assembled and reported on by [`crate::config`], which calls
//! [`check`]; [`crate::ops::paths`] weighs these against the flags and
//! systemd's environment. Errors are (dotted key, message).

use std::path::PathBuf;

use serde::Deserialize;

/// Where the daemon keeps its state when nothing else says so.
pub const DATA_DIR_DEFAULT: &str = "/var/lib/edgecc";
/// Where the daemon's admin socket lives when nothing else says so
/// (systemd's `RuntimeDirectory=edgecc`).
pub const ADMIN_SOCKET_DEFAULT: &str = "/run/edgecc/admin.sock";

/// `[daemon]` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDaemon {
    /// State directory (sled). `--data-dir` and `$STATE_DIRECTORY` win over it.
    pub data_dir: Option<PathBuf>,
    /// Admin unix socket path. `--admin-socket` and `$RUNTIME_DIRECTORY` win.
    pub admin_socket: Option<PathBuf>,
}

/// Checks `[daemon]`: a path it names must be absolute (the daemon's
/// working directory is no place to guess from).
pub fn check(raw: &RawDaemon) -> Result<(), (String, String)> {
    for (key, value) in [
        ("daemon.data_dir", &raw.data_dir),
        ("daemon.admin_socket", &raw.admin_socket),
    ] {
        if let Some(p) = value {
            if !p.is_absolute() {
                return Err((
                    key.to_string(),
                    format!("{} is not an absolute path", p.display()),
                ));
            }
        }
    }
    Ok(())
}
