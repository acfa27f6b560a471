//! The outbox writer: one FIFO for every CRM record the actors produce.
//!
//! Records are appended in the order the actors emitted them, so records of
//! one interaction are durable in the order they happened (invariant 5). A
//! batch holds many calls' records (group commit). When an append fails the
//! writer retries the same batch with capped exponential backoff and surfaces
//! the stall (error log, [`OutboxStatus`], a callback); it never drops or
//! reorders a record, and the calls never wait for it.

use crate::ports::{CrmRecord, OutboxError, SharedOutbox};
use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};
use tracing::{error, warn};

/// Most records per append (one group commit).
pub const OUTBOX_BATCH_RECORDS_MAX: usize = 256;
/// First retry delay after a failed append.
pub const OUTBOX_RETRY_BACKOFF_MS_MIN: u64 = 100;
/// Retry delay cap: retries continue at this pace until the outbox recovers.
pub const OUTBOX_RETRY_BACKOFF_MS_MAX: u64 = 5_000;
/// Failed attempts in a row before the stall is surfaced as an error.
pub const OUTBOX_RETRY_SURFACE_AFTER: u32 = 3;

/// Health of the writer, for the supervisor view and metrics.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct OutboxStatus {
    /// Records accepted by the writer, not yet durable.
    pub records_pending: u64,
    /// Records made durable since start.
    pub records_written: u64,
    /// Failed appends in a row (0 when healthy).
    pub failures_in_row: u32,
    /// The last append error.
    pub last_error: Option<String>,
}

/// One request: records, and who to tell once they are durable.
struct Request {
    /// Records, in order.
    records: Vec<CrmRecord>,
    /// Told `true` once durable.
    done: Option<oneshot::Sender<bool>>,
}

/// Callback when an append has failed [`OUTBOX_RETRY_SURFACE_AFTER`] times in a row.
pub type StallHook = Rc<dyn Fn(&OutboxStatus)>;

/// Handle to the writer task; cheap to clone.
#[derive(Clone)]
pub struct OutboxWriter {
    /// Requests to the task, FIFO.
    tx: mpsc::UnboundedSender<Request>,
    /// Shared health.
    status: Rc<RefCell<OutboxStatus>>,
}

impl OutboxWriter {
    /// Spawns the writer task on the current arbiter.
    pub fn spawn(outbox: SharedOutbox, on_stall: Option<StallHook>) -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        let status = Rc::new(RefCell::new(OutboxStatus::default()));
        actix::spawn(run(outbox, rx, status.clone(), on_stall));
        Self { tx, status }
    }

    /// Queues records; they become durable in order.
    pub fn append(&self, records: Vec<CrmRecord>) {
        self.push(records, None);
    }

    /// Queues records; the receiver is told `true` once they (and everything
    /// before them) are durable.
    pub fn append_confirmed(&self, records: Vec<CrmRecord>) -> oneshot::Receiver<bool> {
        let (tx, rx) = oneshot::channel();
        self.push(records, Some(tx));
        rx
    }

    fn push(&self, records: Vec<CrmRecord>, done: Option<oneshot::Sender<bool>>) {
        self.status.borrow_mut().records_pending += records.len() as u64;
        if let Err(mpsc::error::SendError(req)) = self.tx.send(Request { records, done }) {
            // Only after the task ended (system shutdown): say so loudly.
            error!(
                records = req.records.len(),
                "Outbox writer stopped; records not written."
            );
        }
    }

    /// The writer's health.
    pub fn status(&self) -> OutboxStatus {
        self.status.borrow().clone()
    }
}

async fn run(
    outbox: SharedOutbox,
    mut rx: mpsc::UnboundedReceiver<Request>,
    status: Rc<RefCell<OutboxStatus>>,
    on_stall: Option<StallHook>,
) {
    while let Some(first) = rx.recv().await {
        let mut batch = Vec::new();
        let mut waiters = Vec::new();
        let mut take = |req: Request, batch: &mut Vec<CrmRecord>| {
            batch.extend(req.records);
            waiters.extend(req.done);
        };
        take(first, &mut batch);
        while batch.len() < OUTBOX_BATCH_RECORDS_MAX {
            match rx.try_recv() {
                Ok(req) => take(req, &mut batch),
                Err(_) => break,
            }
        }
        let count = batch.len() as u64;
        let mut backoff_ms = OUTBOX_RETRY_BACKOFF_MS_MIN;
        loop {
            match outbox.append(batch.clone()).await {
                Ok(()) => {
                    let mut s = status.borrow_mut();
                    s.records_pending = s.records_pending.saturating_sub(count);
                    s.records_written += count;
                    s.failures_in_row = 0;
                    s.last_error = None;
                    break;
                }
                Err(e) => {
                    let snapshot = note_failure(&status, &e);
                    if snapshot.failures_in_row >= OUTBOX_RETRY_SURFACE_AFTER {
                        error!(records = count, failures = snapshot.failures_in_row, error = %e,
                            "Outbox append keeps failing; retrying, nothing dropped.");
                        if let Some(hook) = &on_stall {
                            hook(&snapshot);
                        }
                    } else {
                        warn!(records = count, error = %e, "Outbox append failed; retrying.");
                    }
                    tokio::time::sleep(Duration::from_millis(backoff_ms)).await;
                    backoff_ms = (backoff_ms * 2).min(OUTBOX_RETRY_BACKOFF_MS_MAX);
                }
            }
        }
        for w in waiters {
            let _ = w.send(true);
        }
    }
}

fn note_failure(status: &Rc<RefCell<OutboxStatus>>, e: &OutboxError) -> OutboxStatus {
    let mut s = status.borrow_mut();
    s.failures_in_row += 1;
    s.last_error = Some(e.to_string());
    s.clone()
}
