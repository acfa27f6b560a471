//! The daemon side of the admin socket: accept, read one JSON line, run it
//! through [`super::requests::execute`], answer one JSON line.

use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use edgecc_storage::Storage;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::Semaphore;
use tracing::{info, warn};

use super::{requests, AdminError, AdminRequest, AdminResponse, REQUEST_BYTES_MAX};

/// Most admin connections served at once; more wait in the listen backlog.
pub const ADMIN_CONNECTIONS_MAX: usize = 16;
/// How long a client may take to send its request line.
pub const ADMIN_READ_TIMEOUT: Duration = Duration::from_secs(5);

/// A bound admin socket. Dropping it does not remove the file; call
/// [`AdminServer::remove_socket`] on shutdown.
pub struct AdminServer {
    /// The listening socket.
    listener: UnixListener,
    /// Its path, to remove on shutdown.
    path: PathBuf,
}

impl AdminServer {
    /// Binds `path` (mode 0600). A stale socket file left by a crash is
    /// replaced; a live one (another daemon answers on it) is an error.
    pub fn bind(path: &Path) -> std::io::Result<AdminServer> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        if path.exists() {
            if std::os::unix::net::UnixStream::connect(path).is_ok() {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::AddrInUse,
                    format!("{} is in use by another edgecc", path.display()),
                ));
            }
            std::fs::remove_file(path)?;
        }
        let listener = UnixListener::bind(path)?;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
        Ok(AdminServer {
            listener,
            path: path.to_path_buf(),
        })
    }

    /// The socket's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Serves requests until the task is dropped.
    pub async fn serve(self, storage: Storage) {
        let permits = Arc::new(Semaphore::new(ADMIN_CONNECTIONS_MAX));
        loop {
            let Ok(permit) = permits.clone().acquire_owned().await else {
                return;
            };
            match self.listener.accept().await {
                Ok((stream, _)) => {
                    let storage = storage.clone();
                    tokio::spawn(async move {
                        if let Err(e) = serve_one(stream, &storage).await {
                            warn!(error = %e, "Admin connection failed.");
                        }
                        drop(permit);
                    });
                }
                Err(e) => {
                    warn!(error = %e, "Admin socket accept failed.");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    }

    /// Removes the socket file (on clean shutdown).
    pub fn remove_socket(path: &Path) {
        let _ = std::fs::remove_file(path);
    }
}

/// Reads one request line, answers it, closes.
async fn serve_one(stream: UnixStream, storage: &Storage) -> std::io::Result<()> {
    let (read, mut write) = stream.into_split();
    let mut reader = BufReader::new(tokio::io::AsyncReadExt::take(
        read,
        REQUEST_BYTES_MAX as u64 + 1,
    ));
    let mut line = String::new();
    let response = match tokio::time::timeout(ADMIN_READ_TIMEOUT, reader.read_line(&mut line)).await
    {
        Err(_) => AdminResponse::Err(AdminError::new("bad_request", "request timed out")),
        Ok(Err(e)) => AdminResponse::Err(AdminError::new("bad_request", e.to_string())),
        // A client that connects and leaves (a liveness probe) gets nothing.
        Ok(Ok(0)) => return Ok(()),
        Ok(Ok(_)) if line.len() > REQUEST_BYTES_MAX => AdminResponse::Err(AdminError::new(
            "bad_request",
            format!("request longer than {REQUEST_BYTES_MAX} bytes"),
        )),
        Ok(Ok(_)) => match serde_json::from_str::<AdminRequest>(&line) {
            Err(e) => AdminResponse::Err(AdminError::new(
                "bad_request",
                format!("not an admin request: {e}"),
            )),
            Ok(AdminRequest::Backup) => {
                info!(request = "backup", "Admin request.");
                return serve_backup(storage, write).await;
            }
            Ok(request) => {
                info!(request = ?request, "Admin request.");
                match requests::execute(storage, &request, crate::clock::now_ms()).await {
                    Ok(ok) => AdminResponse::Ok { ok },
                    Err(e) => AdminResponse::Err(e),
                }
            }
        },
    };
    let mut out = serde_json::to_vec(&response).unwrap_or_else(|_| {
        br#"{"error":"internal","message":"cannot encode the answer"}"#.to_vec()
    });
    out.push(b'\n');
    write.write_all(&out).await?;
    write.shutdown().await
}

/// Numbers the daemon's temporary backup copies.
static BACKUP_COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// `backup`: the storage writer copies every tree into an unlinked file in
/// the data directory (the daemon can always write there; the CLI's
/// target may be anywhere), then the copy is streamed after the answer
/// line. The file has no name once opened, so nothing is left behind.
async fn serve_backup(
    storage: &Storage,
    mut write: tokio::net::unix::OwnedWriteHalf,
) -> std::io::Result<()> {
    let n = BACKUP_COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let path = storage
        .dir()
        .join(format!(".backup-{}-{n}.tmp", std::process::id()));
    let copy = async {
        let file = std::fs::OpenOptions::new()
            .create_new(true)
            .read(true)
            .write(true)
            .mode(0o600)
            .open(&path)
            .map_err(|e| AdminError::new("storage", format!("{}: {e}", path.display())))?;
        let _ = std::fs::remove_file(&path);
        let writer_handle = file
            .try_clone()
            .map_err(|e| AdminError::new("storage", e.to_string()))?;
        let summary = storage
            .backup(writer_handle, crate::clock::now_ms())
            .await
            .map_err(|e| AdminError::new("storage", e.to_string()))?;
        Ok::<_, AdminError>((file, summary))
    };
    let (file, summary) = match copy.await {
        Ok(v) => v,
        Err(e) => {
            warn!(error = %e, "Backup failed.");
            let mut out = serde_json::to_vec(&AdminResponse::Err(e)).unwrap_or_default();
            out.push(b'\n');
            write.write_all(&out).await?;
            return write.shutdown().await;
        }
    };
    let ok = serde_json::to_value(&summary).unwrap_or_default();
    let mut out = serde_json::to_vec(&AdminResponse::Ok { ok }).unwrap_or_default();
    out.push(b'\n');
    write.write_all(&out).await?;
    let mut file = tokio::fs::File::from_std(file);
    tokio::io::AsyncSeekExt::seek(&mut file, std::io::SeekFrom::Start(0)).await?;
    let sent = tokio::io::copy(&mut file, &mut write).await?;
    info!(
        bytes = sent,
        records = summary.outbox_records,
        dead_letters = summary.dead_letters,
        "Backup sent."
    );
    write.shutdown().await
}
