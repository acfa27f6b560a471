//! `edgecc run`: the long-running daemon.
//!
//! Start-up order matters and is the same every time: open and recover the
//! storage (so nothing acknowledged is lost), bind the admin socket, then
//! serve until SIGTERM or SIGINT. On shutdown the admin socket is removed
//! and the storage writer commits what it holds before the process exits.

use std::path::Path;

use edgecc_storage::{Storage, StorageConfig, StorageError};
use tokio::signal::unix::{signal, SignalKind};
use tracing::info;

use crate::admin::server::AdminServer;
use crate::config::Config;

/// Why the daemon could not start or run.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    /// The data directory could not be opened (held by another process,
    /// unreadable, corrupt beyond recovery).
    #[error("cannot open the data directory {dir}: {source}")]
    Storage {
        /// The directory.
        dir: String,
        /// What storage said.
        source: StorageError,
    },
    /// The admin socket could not be bound.
    #[error("cannot bind the admin socket {path}: {source}")]
    AdminSocket {
        /// The socket path.
        path: String,
        /// What the OS said.
        source: std::io::Error,
    },
    /// Signal handlers could not be installed, or the runtime failed.
    #[error("runtime: {0}")]
    Runtime(std::io::Error),
}

/// Storage options from the config.
pub fn storage_config(config: &Config) -> StorageConfig {
    StorageConfig {
        cache_bytes: config.storage_cache_capacity_bytes,
        ..StorageConfig::default()
    }
}

/// Opens the data directory with the config's options.
pub fn open_storage(config: &Config, data_dir: &Path) -> Result<Storage, DaemonError> {
    Storage::open(data_dir, storage_config(config)).map_err(|source| DaemonError::Storage {
        dir: data_dir.display().to_string(),
        source,
    })
}

/// Runs the daemon until SIGTERM or SIGINT.
pub fn run(config: Config, data_dir: &Path, socket: &Path) -> Result<(), DaemonError> {
    let system = actix_rt::System::new();
    system.block_on(async move {
        let storage = open_storage(&config, data_dir)?;
        let admin = AdminServer::bind(socket).map_err(|source| DaemonError::AdminSocket {
            path: socket.display().to_string(),
            source,
        })?;
        let socket_path = admin.path().to_path_buf();
        let admin_task = actix_rt::spawn(admin.serve(storage.clone()));
        info!(
            data_dir = %data_dir.display(),
            admin_socket = %socket_path.display(),
            site_id = %config.site_id,
            "edgecc started."
        );
        let mut term = signal(SignalKind::terminate()).map_err(DaemonError::Runtime)?;
        let mut int = signal(SignalKind::interrupt()).map_err(DaemonError::Runtime)?;
        tokio::select! {
            _ = term.recv() => info!(signal = "SIGTERM", "Shutting down."),
            _ = int.recv() => info!(signal = "SIGINT", "Shutting down."),
        }
        admin_task.abort();
        AdminServer::remove_socket(&socket_path);
        drop(storage);
        info!("edgecc stopped.");
        Ok(())
    })
}
