//! What an installer runs besides the daemon: `edgecc check-config`,
//! `edgecc backup` and `edgecc restore`.
//!
//! - `check-config` validates the file, checks that every secret file it
//!   names can be read, and prints the effective configuration with
//!   secrets redacted ([`Config::redacted`]); systemd runs it with `--quiet`
//!   before starting and before reloading.
//! - `backup` asks the running daemon for a point-in-time copy over the
//!   admin socket (or opens the data directory itself with `--offline`),
//!   writes it next to FILE, checks it completely, and only then gives it
//!   its name.
//! - `restore` refuses while the daemon runs; the storage crate checks the
//!   whole file before it writes anything (see `edgecc_storage::backup`).
//!   Run as root, it gives the restored files to the data directory's
//!   owner, so the `edgecc` service user can open them.

use std::fs::File;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use edgecc_storage::backup as storage_backup;
use edgecc_storage::BackupSummary;

use super::admin;
use crate::config::Config;
use crate::net::SECRET_FILE_BYTES_MAX;
use crate::system::storage::{open_storage, storage_config};

/// `edgecc check-config FILE`: exit 0 and the redacted configuration, or
/// an error naming the file and the key.
pub fn check_config(path: &Path, credentials: Option<&Path>, quiet: bool) -> Result<(), String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("{}: cannot read the file: {e}", path.display()))?;
    let config = match credentials {
        Some(dir) => Config::parse_with_credentials(&text, path, Some(dir)),
        None => Config::parse(&text, path),
    }
    .map_err(|e| e.to_string())?;
    let secrets = config.secret_files();
    let mut warnings = Vec::new();
    for (key, file) in &secrets {
        let named = |what: String| format!("{}: key `{key}`: {what}", path.display());
        // Non-blocking: a FIFO in a secret's place must not hang the check.
        let meta = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
            .open(file)
            .and_then(|f| f.metadata())
            .map_err(|e| named(format!("cannot read {}: {e}", file.display())))?;
        if !meta.is_file() {
            return Err(named(format!("{} is not a regular file", file.display())));
        }
        let limit = if key.starts_with("http.tls_") {
            u64::MAX
        } else {
            SECRET_FILE_BYTES_MAX
        };
        if meta.len() > limit {
            return Err(named(format!(
                "{} is {} bytes, more than the {limit} a secret may be",
                file.display(),
                meta.len()
            )));
        }
        if meta.len() == 0 {
            return Err(named(format!("{} is empty", file.display())));
        }
        if key != "http.tls_cert_file" && meta.permissions().mode() & 0o004 != 0 {
            warnings.push(format!(
                "key `{key}`: {} is readable by every user of the box (chmod o-r)",
                file.display()
            ));
        }
    }
    if let Some(listen) = &config.http.listen {
        let loopback = listen
            .parse::<std::net::SocketAddr>()
            .is_ok_and(|a| a.ip().is_loopback());
        if !loopback && config.http.tls_cert_file.is_none() {
            warnings.push(format!(
                "key `http.listen`: {listen} is reachable beyond this box over plain HTTP: \
                 passwords and tokens cross the network unencrypted (set http.tls_cert_file \
                 and http.tls_key_file)"
            ));
        }
    }
    for w in &warnings {
        eprintln!("warning: {}: {w}", path.display());
    }
    if quiet {
        return Ok(());
    }
    let value = config.redacted()?;
    let text = toml::to_string_pretty(&value)
        .map_err(|e| format!("cannot print the configuration: {e}"))?;
    println!(
        "# {} is valid. Effective configuration, secrets redacted:",
        path.display()
    );
    for (key, file) in &secrets {
        println!("# secret file {key}: {} (readable)", file.display());
    }
    println!("{text}");
    Ok(())
}

/// `FILE.partial`: where a backup is written until it checked out.
fn partial_path(file: &Path) -> PathBuf {
    let mut name = file.as_os_str().to_owned();
    name.push(".partial");
    PathBuf::from(name)
}

/// `edgecc backup FILE [--offline]`: through the daemon at `socket`, or
/// (`offline`) from `data_dir` directly.
pub fn backup(
    file: &Path,
    offline: bool,
    data_dir: &Path,
    socket: &Path,
    config: &Config,
) -> Result<(), String> {
    if file.exists() {
        return Err(format!("{} exists: choose a new file name", file.display()));
    }
    let partial = partial_path(file);
    let mut out = std::fs::OpenOptions::new()
        .create_new(true)
        .read(true)
        .write(true)
        .open(&partial)
        .map_err(|e| format!("cannot create {}: {e}", partial.display()))?;
    let result = (|| {
        let summary = if offline {
            backup_offline(data_dir, config, &out)?
        } else {
            let summary = admin::client::backup(socket, &mut out).map_err(|e| e.message)?;
            out.sync_all()
                .map_err(|e| format!("cannot sync {}: {e}", partial.display()))?;
            summary
        };
        let checked = storage_backup::verify(&partial).map_err(|e| e.to_string())?;
        if checked.entries != summary.entries || checked.bytes != summary.bytes {
            return Err(format!(
                "the written backup holds {} entries in {} bytes, the daemon sent {} in {}",
                checked.entries, checked.bytes, summary.entries, summary.bytes
            ));
        }
        std::fs::rename(&partial, file)
            .map_err(|e| format!("cannot rename {}: {e}", partial.display()))?;
        if let Some(dir) = file.parent().filter(|d| !d.as_os_str().is_empty()) {
            let _ = File::open(dir).and_then(|d| d.sync_all());
        }
        Ok(summary)
    })();
    match result {
        Ok(s) => {
            println!(
                "backup {}: {} outbox records, {} dead letters, {} state entries, {} bytes",
                file.display(),
                s.outbox_records,
                s.dead_letters,
                s.state_entries,
                s.bytes
            );
            Ok(())
        }
        Err(e) => {
            let _ = std::fs::remove_file(&partial);
            Err(e)
        }
    }
}

/// `--offline`: opens the data directory (refused while the daemon holds
/// it) and has its writer take the copy.
fn backup_offline(data_dir: &Path, config: &Config, out: &File) -> Result<BackupSummary, String> {
    if !data_dir.exists() {
        return Err(format!("no data directory at {}", data_dir.display()));
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("runtime: {e}"))?;
    let handle = out.try_clone().map_err(|e| e.to_string())?;
    runtime.block_on(async {
        let storage = open_storage(config, data_dir).map_err(|e| e.to_string())?;
        storage
            .backup(handle, crate::clock::now_ms())
            .await
            .map_err(|e| e.to_string())
    })
}

/// `edgecc restore FILE [--force]` into `data_dir`, refused while a daemon
/// answers at `socket`.
pub fn restore(
    file: &Path,
    force: bool,
    data_dir: &Path,
    socket: &Path,
    config: &Config,
) -> Result<(), String> {
    if std::os::unix::net::UnixStream::connect(socket).is_ok() {
        return Err(format!(
            "the daemon is running (it answers at {}): stop it first (systemctl stop edgecc)",
            socket.display()
        ));
    }
    // Whoever owns the directory (or, for a new one, its parent) owns the
    // restored files: the service user under systemd.
    let owner = owner_of(data_dir).or_else(|| data_dir.parent().and_then(owner_of));
    let done = storage_backup::restore(data_dir, file, storage_config(config), force)
        .map_err(|e| e.to_string())?;
    if let Some((uid, gid)) = owner {
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } == 0 && uid != 0 {
            chown_tree(data_dir, uid, gid)
                .map_err(|e| format!("restored, but cannot hand the files to uid {uid}: {e}"))?;
        }
    }
    println!(
        "restored {} into {}: {} outbox records, {} dead letters, {} state entries",
        file.display(),
        data_dir.display(),
        done.depth,
        done.dead_letters,
        done.backup.state_entries
    );
    Ok(())
}

/// Owner and group of `path`, if it exists.
fn owner_of(path: &Path) -> Option<(u32, u32)> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path).ok().map(|m| (m.uid(), m.gid()))
}

/// `chown -R uid:gid dir` (no symlinks followed).
fn chown_tree(dir: &Path, uid: u32, gid: u32) -> std::io::Result<()> {
    std::os::unix::fs::lchown(dir, Some(uid), Some(gid))?;
    if std::fs::symlink_metadata(dir)?.is_dir() {
        for entry in std::fs::read_dir(dir)? {
            chown_tree(&entry?.path(), uid, gid)?;
        }
    }
    Ok(())
}
