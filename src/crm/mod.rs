//! The CRM side: the port every CRM adapter implements, the adapters
//! (webhook, ServiceNow) as peers over one transport, the sync worker that
//! drains the outbox into one of them, and the CRM emulator (`edgecc
//! crm-emulator`, the demo and the tests).
//!
//! # Layout
//!
//! - this file — [`CrmAdapter`], [`Outcome`]: what an adapter answers for
//!   each record; [`AdapterError`]: why one could not be built.
//! - [`transport`] — request/answer plumbing every adapter shares: the
//!   bounded exchange, `Retry-After`, excerpts, and the one classification
//!   of a status into delivered / retry / hold / permanent. The HTTP client
//!   and secret files come from [`crate::net`].
//! - [`wire`] — the JSON document every adapter derives from a record.
//! - [`webhook`] — POST JSON with `Idempotency-Key` and an HMAC signature.
//! - [`servicenow`] — OpenFrame (voice-interaction API), Import Set (upsert)
//!   and Table API modes.
//! - [`emulator`] — an actix-web CRM on 127.0.0.1 with switchable faults.
//! - [`sn_instance`] — what that emulator knows of a ServiceNow instance:
//!   tables, fields, transform maps, encoded queries, error bodies.
//! - [`sync`] — the [`sync::SyncWorker`] actor: order, concurrency,
//!   backoff, circuit breaker, dead letters.
//! - [`sync_thread`] — that worker on a thread of its own with a raised
//!   nice value, so a replay yields to routing.

pub mod emulator;
pub mod servicenow;
pub mod sn_instance;
pub mod sync;
pub mod sync_thread;
pub mod transport;
pub mod webhook;
pub mod wire;

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use edgecc_storage::Record;

use crate::net::{ClientError, SettingError};

/// A boxed future that need not be `Send` (adapters run on the actix
/// arbiter, whose HTTP client is single-threaded).
pub type LocalBoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + 'a>>;

/// What became of one record at the CRM.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The CRM has it (2xx; or 409 / "already exists" on a create, which
    /// means an earlier attempt landed). `link` is the CRM record's URL or
    /// id when the CRM gave one.
    Delivered {
        /// Where the record lives at the CRM, if known.
        link: Option<String>,
    },
    /// Try again later: connection refused or reset, timeout, 408, 429,
    /// 5xx, a 200 whose body reports failure, an answer we cannot parse.
    Retry {
        /// What happened, for the record's `last_error` and the logs.
        reason: String,
        /// The CRM's `Retry-After`, when it sent one.
        retry_after: Option<Duration>,
        /// True when the CRM itself is unwell (connection, timeout, 5xx,
        /// 429): these count towards opening the circuit breaker. False for
        /// a fault of this one record that is still worth retrying.
        crm_down: bool,
    },
    /// The CRM refused the record for good (4xx other than 408/409/429,
    /// 403 from an ACL or business rule): it goes to the dead letters.
    Permanent {
        /// HTTP status.
        status: u16,
        /// The CRM's reason: an excerpt of its answer.
        reason: String,
    },
}

/// A CRM the sync worker can deliver to.
pub trait CrmAdapter {
    /// Short name for logs and metrics (`webhook`, `servicenow`).
    fn name(&self) -> &'static str;

    /// Most records [`CrmAdapter::deliver`] takes at once (1: no batching).
    fn batch_max(&self) -> usize {
        1
    }

    /// Delivers `records` (at most [`CrmAdapter::batch_max`], each of a
    /// different interaction) and answers one outcome per record, in the
    /// same order. Never panics; every failure is an [`Outcome`].
    fn deliver(&self, records: Vec<Record>) -> LocalBoxFuture<'_, Vec<Outcome>>;
}

/// Why an adapter could not be built from its config section.
#[derive(Debug, thiserror::Error)]
pub enum AdapterError {
    /// A key is wrong or its secret file unreadable; names the key.
    #[error(transparent)]
    Setting(#[from] SettingError),
    /// The HTTP client could not be built (TLS set-up).
    #[error(transparent)]
    Client(#[from] ClientError),
}
