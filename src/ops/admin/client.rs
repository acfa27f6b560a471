//! The CLI side of the admin socket: one request, one answer, with timeouts.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

use super::{AdminError, AdminRequest, AdminResponse};

/// How long the CLI waits for the daemon to answer; a wedged daemon must not
/// hang an installer's shell.
pub const ADMIN_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest answer the CLI reads (a full `list` is well below this).
const RESPONSE_BYTES_MAX: u64 = 64 * 1024 * 1024;

/// Sends `request` to the daemon at `socket` and returns its answer.
pub fn call(socket: &Path, request: &AdminRequest) -> Result<serde_json::Value, AdminError> {
    exchange(socket, request, ADMIN_TIMEOUT).map(|(_, ok)| ok)
}

/// The I/O error of the admin connection to `socket`, as an `AdminError`.
fn io_error(socket: &Path) -> impl Fn(std::io::Error) -> AdminError + '_ {
    move |e| {
        AdminError::new(
            "unavailable",
            format!("admin socket {}: {e}", socket.display()),
        )
    }
}

/// Connects, sends `request` as one line and reads the one-line answer
/// (each read waiting at most `read_timeout`). Returns the connection, for
/// answers followed by bytes, and the answer's `ok` value.
fn exchange(
    socket: &Path,
    request: &AdminRequest,
    read_timeout: Duration,
) -> Result<(BufReader<UnixStream>, serde_json::Value), AdminError> {
    let mut stream = UnixStream::connect(socket).map_err(|e| {
        AdminError::new(
            "unavailable",
            format!(
                "cannot reach the daemon at {}: {e}. Is it running? \
                 (--offline opens the data directory directly when it is stopped)",
                socket.display()
            ),
        )
    })?;
    let io = io_error(socket);
    stream.set_read_timeout(Some(read_timeout)).map_err(&io)?;
    stream.set_write_timeout(Some(ADMIN_TIMEOUT)).map_err(&io)?;
    let mut line = serde_json::to_vec(request)
        .map_err(|e| AdminError::new("bad_request", format!("cannot encode request: {e}")))?;
    line.push(b'\n');
    stream.write_all(&line).map_err(&io)?;
    let mut reader = BufReader::new(stream);
    let mut answer = String::new();
    (&mut reader)
        .take(RESPONSE_BYTES_MAX)
        .read_line(&mut answer)
        .map_err(&io)?;
    if answer.is_empty() {
        return Err(AdminError::new(
            "unavailable",
            "the daemon closed the admin connection without answering",
        ));
    }
    match serde_json::from_str::<AdminResponse>(&answer) {
        Ok(AdminResponse::Ok { ok }) => Ok((reader, ok)),
        Ok(AdminResponse::Err(e)) => Err(e),
        Err(e) => Err(AdminError::new(
            "unavailable",
            format!("the daemon's answer is not valid: {e}"),
        )),
    }
}

/// How long `edgecc backup` waits for each read from the daemon: taking
/// the copy of a large outbox takes a while before the first byte.
pub const BACKUP_TIMEOUT: Duration = Duration::from_secs(600);

/// Asks the daemon at `socket` for a backup and writes its bytes to `out`.
pub fn backup(
    socket: &Path,
    out: &mut impl Write,
) -> Result<edgecc_storage::BackupSummary, AdminError> {
    let (mut reader, ok) = exchange(socket, &AdminRequest::Backup, BACKUP_TIMEOUT)?;
    let summary: edgecc_storage::BackupSummary = serde_json::from_value(ok).map_err(|e| {
        AdminError::new(
            "unavailable",
            format!("the daemon's answer is not valid: {e}"),
        )
    })?;
    let copied =
        std::io::copy(&mut (&mut reader).take(summary.bytes), out).map_err(io_error(socket))?;
    if copied != summary.bytes {
        return Err(AdminError::new(
            "unavailable",
            format!("the daemon sent {copied} of {} backup bytes", summary.bytes),
        ));
    }
    Ok(summary)
}
