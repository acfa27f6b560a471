//! The local admin interface: what `edgecc outbox …` asks, and how.
//!
//! sled locks its data directory, so while the daemon runs a CLI command
//! cannot open the outbox itself. Instead it sends one [`AdminRequest`] as a
//! JSON line over the daemon's unix socket ([`server`]) and reads one JSON
//! line back ([`client`]). With `--offline` the CLI runs the very same
//! [`requests::execute`] on the data directory directly. One mechanism, two
//! transports: the answers are identical by construction.
//!
//! ```text
//! -> {"cmd":"outbox_status"}\n
//! <- {"ok":{...}}\n            or  {"error":"not_found","message":"..."}\n
//! ```
//!
//! `backup` is the one request whose answer line is followed by raw bytes:
//! the backup file, streamed from a copy the daemon took in its data
//! directory (see [`server`]).

pub mod client;
pub mod requests;
pub mod server;

use serde::{Deserialize, Serialize};

/// Longest request line the server reads; anything longer is refused.
pub const REQUEST_BYTES_MAX: usize = 64 * 1024;
/// Most records one `list` answer carries, whatever the caller asks. The
/// daemon reads them whole (bodies up to 64 KiB), so this bounds the
/// memory one request can take to 64 MiB; page on with `--from`.
pub const LIST_LIMIT_MAX: usize = 1_000;

/// One admin request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "cmd", rename_all = "snake_case", deny_unknown_fields)]
pub enum AdminRequest {
    /// Depth, oldest age, in flight, held, dead letters, bytes on disk.
    OutboxStatus,
    /// Pending records from a sequence on.
    OutboxList {
        /// First sequence to show.
        from: u64,
        /// How many at most.
        limit: usize,
    },
    /// Dead letters from a sequence on.
    DeadList {
        /// First sequence to show.
        from: u64,
        /// How many at most.
        limit: usize,
    },
    /// Put one dead letter back in its place in the outbox.
    DeadRequeue {
        /// The dead letter's sequence.
        seq: u64,
    },
    /// Put every dead letter back.
    DeadRequeueAll,
    /// A point-in-time backup of the data directory. The answer line
    /// (`{"ok": BackupSummary}`) is followed by exactly `bytes` bytes of
    /// the backup file (see `edgecc_storage::backup`).
    Backup,
    /// A queue or agent report from the call history (`edgecc report`).
    Report {
        /// What to report, with the thresholds to count with.
        query: crate::reports::ReportQuery,
        /// Answer `{"csv": "..."}` instead of the report's JSON.
        csv: bool,
    },
}

/// One admin answer: either `ok` with a JSON value, or an error.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(untagged)]
pub enum AdminResponse {
    /// The request succeeded.
    Ok {
        /// The command's result.
        ok: serde_json::Value,
    },
    /// The request failed.
    Err(AdminError),
}

/// A failed admin request: a stable code for scripts, a sentence for people.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{message}")]
pub struct AdminError {
    /// Stable machine-readable code: `bad_request`, `not_found`, `storage`,
    /// `unavailable`.
    pub error: String,
    /// What went wrong, for a person.
    pub message: String,
}

impl AdminError {
    /// Builds an error with a code and message.
    pub fn new(code: &str, message: impl Into<String>) -> Self {
        AdminError {
            error: code.to_string(),
            message: message.into(),
        }
    }
}
