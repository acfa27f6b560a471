//! The outbox writer: one FIFO for every CRM record the actors produce, and
//! (when the system keeps its state) for every state record too.
//!
//! Records are appended in the order the actors emitted them, so records of
//! one interaction are durable in the order they happened (invariant 5). A
//! batch holds many calls' records (group commit). When an append fails the
//! outbox hands the batch back ([`OutboxPort::append`](crate::ports::OutboxPort::append))
//! and the writer retries it with capped exponential backoff and surfaces
//! the stall (error log, [`OutboxStatus`], a callback); it never drops or
//! reorders a record, and the calls never wait for it.
//!
//! # State records
//!
//! A writer spawned with [`OutboxWriter::spawn_with_state`] also carries the
//! actors' [`StateRecord`]s (through its [`WriterState`] port) to a
//! [`StateStore`](crate::durable::StateStore). Each batch is committed in
//! two steps: first its CRM records (to the outbox), then its state records
//! (to the store), the second only once the first is durable. So a state record is never durable
//! before a CRM record emitted before it (the contract of
//! [`crate::durable`]), and a failed step is retried alone (the CRM records
//! are not appended twice). Inside a batch only the latest record of each
//! key is committed, in the order of those latest records. The store takes
//! the batch whole ([`StateStore::commit_batch`](crate::durable::StateStore::commit_batch)) and hands it back on
//! an error: the writer never copies a batch for a retry, and the daemon's
//! store coalesces, encodes and frees it off the actors' thread (a batch
//! holds hundreds of call records of a few KiB each).

use crate::durable::{SharedStateStore, StatePort, StateRecord};
use crate::ports::{CrmRecord, OutboxError, SharedOutbox};
use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};
use tracing::{error, warn};

/// Most records per append (one group commit).
pub const OUTBOX_BATCH_RECORDS_MAX: usize = 256;
/// Most state records taken into one batch (before coalescing per key).
pub const STATE_BATCH_RECORDS_MAX: usize = 1_024;
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
    /// State records accepted by the writer, not yet committed (0 when the
    /// system keeps no state).
    pub states_pending: u64,
    /// State records committed since start, after coalescing per key.
    pub states_written: u64,
    /// Failed appends or state commits in a row (0 when healthy).
    pub failures_in_row: u32,
    /// The last append or commit error.
    pub last_error: Option<String>,
}

/// One request, in FIFO order.
enum Request {
    /// CRM records, and who to tell once they are durable.
    Records {
        /// Records, in order.
        records: Vec<CrmRecord>,
        /// Told `true` once durable.
        done: Option<oneshot::Sender<bool>>,
    },
    /// One state record (only on a writer with a state store).
    State(StateRecord),
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

/// The [`StatePort`] of a writer spawned with
/// [`OutboxWriter::spawn_with_state`]: `persist` queues the record behind
/// every CRM record already queued and returns at once.
#[derive(Clone)]
pub struct WriterState {
    /// The writer whose FIFO carries the records.
    writer: OutboxWriter,
}

impl StatePort for WriterState {
    fn persist(&self, record: StateRecord) {
        self.writer.status.borrow_mut().states_pending += 1;
        if self.writer.tx.send(Request::State(record)).is_err() {
            error!("Outbox writer stopped; state record not written.");
        }
    }
}

impl OutboxWriter {
    /// Spawns the writer task on the current arbiter (CRM records only).
    pub fn spawn(outbox: SharedOutbox, on_stall: Option<StallHook>) -> Self {
        Self::spawn_inner(outbox, None, on_stall)
    }

    /// Spawns the writer task on the current arbiter, carrying CRM records
    /// to `outbox` and state records (pushed through the returned port) to
    /// `store`, in one order (see the module doc).
    pub fn spawn_with_state(
        outbox: SharedOutbox,
        store: SharedStateStore,
        on_stall: Option<StallHook>,
    ) -> (Self, WriterState) {
        let writer = Self::spawn_inner(outbox, Some(store), on_stall);
        let port = WriterState {
            writer: writer.clone(),
        };
        (writer, port)
    }

    fn spawn_inner(
        outbox: SharedOutbox,
        store: Option<SharedStateStore>,
        on_stall: Option<StallHook>,
    ) -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        let status = Rc::new(RefCell::new(OutboxStatus::default()));
        let sinks = Sinks {
            outbox,
            store,
            status: status.clone(),
            on_stall,
        };
        actix::spawn(run(sinks, rx));
        Self { tx, status }
    }

    /// Queues records; they become durable in order.
    pub fn append(&self, records: Vec<CrmRecord>) {
        self.push(records, None);
    }

    /// Queues records; the receiver is told `true` once they (and every CRM
    /// record before them) are durable.
    pub fn append_confirmed(&self, records: Vec<CrmRecord>) -> oneshot::Receiver<bool> {
        let (tx, rx) = oneshot::channel();
        self.push(records, Some(tx));
        rx
    }

    fn push(&self, records: Vec<CrmRecord>, done: Option<oneshot::Sender<bool>>) {
        self.status.borrow_mut().records_pending += records.len() as u64;
        if let Err(mpsc::error::SendError(req)) = self.tx.send(Request::Records { records, done }) {
            // Only after the task ended (system shutdown): say so loudly.
            let records = match req {
                Request::Records { records, .. } => records.len(),
                Request::State(_) => 0,
            };
            error!(records, "Outbox writer stopped; records not written.");
        }
    }

    /// The writer's health.
    pub fn status(&self) -> OutboxStatus {
        self.status.borrow().clone()
    }
}

/// Where the writer task commits, and what it reports.
struct Sinks {
    /// The CRM outbox.
    outbox: SharedOutbox,
    /// The state store, when the system keeps its state.
    store: Option<SharedStateStore>,
    /// Shared health.
    status: Rc<RefCell<OutboxStatus>>,
    /// Told of a stall.
    on_stall: Option<StallHook>,
}

/// One batch taken from the FIFO.
#[derive(Default)]
struct Batch {
    /// CRM records, in order.
    records: Vec<CrmRecord>,
    /// Told once the records are durable.
    waiters: Vec<oneshot::Sender<bool>>,
    /// State records, in order (not yet coalesced).
    states: Vec<StateRecord>,
}

impl Batch {
    fn take(&mut self, req: Request) {
        match req {
            Request::Records { records, done } => {
                self.records.extend(records);
                self.waiters.extend(done);
            }
            Request::State(record) => self.states.push(record),
        }
    }

    fn full(&self) -> bool {
        self.records.len() >= OUTBOX_BATCH_RECORDS_MAX
            || self.states.len() >= STATE_BATCH_RECORDS_MAX
    }
}

async fn run(sinks: Sinks, mut rx: mpsc::UnboundedReceiver<Request>) {
    while let Some(first) = rx.recv().await {
        let mut batch = Batch::default();
        batch.take(first);
        while !batch.full() {
            match rx.try_recv() {
                Ok(req) => batch.take(req),
                Err(_) => break,
            }
        }
        let Batch {
            records,
            waiters,
            states,
        } = batch;
        if !records.is_empty() {
            let count = records.len() as u64;
            append_records(&sinks, records).await;
            let mut s = sinks.status.borrow_mut();
            s.records_pending = s.records_pending.saturating_sub(count);
            s.records_written += count;
        }
        for w in waiters {
            let _ = w.send(true);
        }
        if !states.is_empty() {
            let taken = states.len() as u64;
            let written = match &sinks.store {
                Some(store) => commit_states(&sinks, store, states).await,
                None => {
                    error!(
                        records = taken,
                        "State records reached a writer without a state store; not written."
                    );
                    0
                }
            };
            let mut s = sinks.status.borrow_mut();
            s.states_pending = s.states_pending.saturating_sub(taken);
            s.states_written += written as u64;
        }
    }
}

/// Commits one batch of state records until the store takes it; returns
/// how many were written after coalescing. The store owns the batch and
/// hands it back on an error, so no copy is made on the actors' thread.
async fn commit_states(
    sinks: &Sinks,
    store: &SharedStateStore,
    mut states: Vec<StateRecord>,
) -> usize {
    let mut backoff_ms = OUTBOX_RETRY_BACKOFF_MS_MIN;
    loop {
        let count = states.len() as u64;
        match store.commit_batch(states).await {
            Ok(written) => {
                healthy(&sinks.status);
                return written;
            }
            Err((e, back)) => {
                states = back;
                failed(sinks, "State commit", count, &e, &mut backoff_ms).await;
            }
        }
    }
}

/// A commit succeeded: the writer is healthy again.
fn healthy(status: &Rc<RefCell<OutboxStatus>>) {
    let mut s = status.borrow_mut();
    s.failures_in_row = 0;
    s.last_error = None;
}

/// A commit failed: counts it, logs it (surfacing the stall after
/// [`OUTBOX_RETRY_SURFACE_AFTER`] in a row) and backs off.
async fn failed(sinks: &Sinks, what: &str, count: u64, e: &OutboxError, backoff_ms: &mut u64) {
    let snapshot = note_failure(&sinks.status, e);
    if snapshot.failures_in_row >= OUTBOX_RETRY_SURFACE_AFTER {
        error!(records = count, failures = snapshot.failures_in_row, error = %e,
            "{what} keeps failing; retrying, nothing dropped.");
        if let Some(hook) = &sinks.on_stall {
            hook(&snapshot);
        }
    } else {
        warn!(records = count, error = %e, "{what} failed; retrying.");
    }
    tokio::time::sleep(Duration::from_millis(*backoff_ms)).await;
    *backoff_ms = (*backoff_ms * 2).min(OUTBOX_RETRY_BACKOFF_MS_MAX);
}

/// Appends one batch of CRM records until the outbox takes it. The outbox
/// owns the batch and hands it back on an error, so the retry sends the
/// same records in the same order and no copy is made on the actors'
/// thread.
async fn append_records(sinks: &Sinks, mut records: Vec<CrmRecord>) {
    let mut backoff_ms = OUTBOX_RETRY_BACKOFF_MS_MIN;
    loop {
        let count = records.len() as u64;
        match sinks.outbox.append(records).await {
            Ok(()) => return healthy(&sinks.status),
            Err((e, back)) => {
                records = back;
                failed(sinks, "Outbox append", count, &e, &mut backoff_ms).await;
            }
        }
    }
}

fn note_failure(status: &Rc<RefCell<OutboxStatus>>, e: &OutboxError) -> OutboxStatus {
    let mut s = status.borrow_mut();
    s.failures_in_row += 1;
    s.last_error = Some(e.to_string());
    s.clone()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crm::RecordKind;
    use crate::durable::StateStore;
    use crate::ids::{CallId, QueueId};
    use crate::ports::{LocalBoxFuture, MemoryOutbox, OutboxAppend, OutboxPort};

    /// What reached the disk, in order: `crm:{correlation}` or `state:{key}`.
    type Log = Rc<RefCell<Vec<String>>>;

    /// An outbox logging each durable record (and failing on demand).
    struct LoggingOutbox(Log, MemoryOutbox);
    impl OutboxPort for LoggingOutbox {
        fn append(&self, records: Vec<CrmRecord>) -> LocalBoxFuture<'static, OutboxAppend> {
            let log = self.0.clone();
            let ids: Vec<String> = records.iter().map(|r| r.correlation_id.clone()).collect();
            let append = self.1.append(records);
            Box::pin(async move {
                append.await?;
                log.borrow_mut()
                    .extend(ids.into_iter().map(|id| format!("crm:{id}")));
                Ok(())
            })
        }
    }

    /// An outbox noting the correlation ids each append attempt received
    /// (before it succeeds or fails), over a [`MemoryOutbox`].
    struct AttemptsOutbox(Rc<RefCell<Vec<Vec<String>>>>, MemoryOutbox);
    impl OutboxPort for AttemptsOutbox {
        fn append(&self, records: Vec<CrmRecord>) -> LocalBoxFuture<'static, OutboxAppend> {
            let ids = records.iter().map(|r| r.correlation_id.clone()).collect();
            self.0.borrow_mut().push(ids);
            self.1.append(records)
        }
    }

    /// Goal: a failed append hands its batch back and the writer retries
    /// with it: the same records in the same order at every attempt, each
    /// durable once, in order, and a later batch after them. Method: three
    /// records in one batch, the first two attempts failing, then a fourth
    /// record once the outbox is healthy.
    #[actix_rt::test]
    async fn a_failed_append_comes_back_whole_for_the_retry() {
        tokio::time::pause();
        let attempts = Rc::new(RefCell::new(Vec::new()));
        let outbox = MemoryOutbox::new();
        outbox.fail_next(2);
        let writer = OutboxWriter::spawn(
            Rc::new(AttemptsOutbox(attempts.clone(), outbox.clone())),
            None,
        );
        writer.append(vec![crm("r1"), crm("r2")]);
        writer.append(vec![crm("r3")]);
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(outbox.is_empty(), "nothing durable while the outbox fails");
        assert_eq!(writer.status().records_pending, 3);
        tokio::time::sleep(Duration::from_secs(1)).await;
        let batch = vec!["r1", "r2", "r3"];
        assert_eq!(*attempts.borrow(), vec![batch.clone(); 3]);
        writer.append(vec![crm("r4")]);
        tokio::time::sleep(Duration::from_millis(10)).await;
        let durable: Vec<String> = outbox
            .records()
            .into_iter()
            .map(|r| r.correlation_id)
            .collect();
        assert_eq!(durable, ["r1", "r2", "r3", "r4"], "each once, in order");
        let s = writer.status();
        assert_eq!((s.records_pending, s.records_written), (0, 4));
        assert_eq!((s.failures_in_row, s.last_error), (0, None));
    }

    /// A store logging each committed record (and failing on demand).
    struct LoggingStore(Log, Rc<RefCell<u32>>);
    impl StateStore for LoggingStore {
        fn commit(
            &self,
            records: Vec<StateRecord>,
        ) -> LocalBoxFuture<'static, Result<(), OutboxError>> {
            let mut fail = self.1.borrow_mut();
            if *fail > 0 {
                *fail -= 1;
                return Box::pin(std::future::ready(Err(OutboxError::Unavailable(
                    "injected".into(),
                ))));
            }
            self.0.borrow_mut().extend(records.iter().map(|r| {
                let key = String::from_utf8_lossy(&r.key().to_bytes()).into_owned();
                match r {
                    StateRecord::QueueOrder { waiting, .. } => {
                        format!("state:{key}={}", waiting.len())
                    }
                    _ => format!("state:{key}"),
                }
            }));
            Box::pin(std::future::ready(Ok(())))
        }
    }

    fn crm(id: &str) -> CrmRecord {
        CrmRecord {
            kind: RecordKind::InteractionCreate,
            correlation_id: id.into(),
            interaction_key: "c1".into(),
            at_ms: 0,
            body: serde_json::json!({}),
        }
    }

    fn order(n: usize) -> StateRecord {
        StateRecord::QueueOrder {
            queue: QueueId::new("q"),
            waiting: (0..n).map(|i| CallId::new(format!("c{i}"))).collect(),
        }
    }

    /// A state record persisted after a CRM record is committed after it,
    /// even while the outbox fails (the state waits, never overtakes), and
    /// the CRM records are appended once (a failed state commit is retried
    /// alone); inside a batch only the latest record of a key is written.
    #[actix_rt::test]
    async fn state_never_overtakes_the_crm_records_before_it() {
        tokio::time::pause();
        let log: Log = Rc::default();
        let outbox = MemoryOutbox::new();
        let store_failures = Rc::new(RefCell::new(1));
        outbox.fail_next(2);
        let (writer, state) = OutboxWriter::spawn_with_state(
            Rc::new(LoggingOutbox(log.clone(), outbox.clone())),
            Rc::new(LoggingStore(log.clone(), store_failures.clone())),
            None,
        );
        writer.append(vec![crm("r1")]);
        state.persist(order(1));
        state.persist(order(2));
        writer.append(vec![crm("r2")]);
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(
            log.borrow().is_empty(),
            "nothing durable while the outbox fails"
        );
        assert_eq!(writer.status().states_pending, 2);
        tokio::time::sleep(Duration::from_secs(2)).await;
        assert_eq!(
            *log.borrow(),
            vec!["crm:r1", "crm:r2", "state:q/q=2"],
            "CRM first, then the latest state of the key"
        );
        assert_eq!(outbox.len(), 2, "each CRM record appended once");
        assert_eq!(*store_failures.borrow(), 0, "the state commit was retried");
        let s = writer.status();
        assert_eq!((s.records_pending, s.states_pending), (0, 0));
        assert_eq!((s.records_written, s.states_written), (2, 1));
        state.persist(order(3));
        writer.append(vec![crm("r3")]);
        tokio::time::sleep(Duration::from_millis(10)).await;
        assert_eq!(
            log.borrow()[3..],
            ["crm:r3", "state:q/q=3"],
            "a state before a CRM record in one batch may follow it, never the other way"
        );
    }

    /// A store that takes the writer's batches whole: what each attempt
    /// received (the number of records and the latest queue length), and
    /// the number of attempts still to fail.
    struct BatchStore(Rc<RefCell<Vec<(usize, usize)>>>, Rc<RefCell<u32>>);
    impl StateStore for BatchStore {
        fn commit(
            &self,
            _records: Vec<StateRecord>,
        ) -> LocalBoxFuture<'static, Result<(), OutboxError>> {
            unreachable!("the writer commits through commit_batch")
        }

        fn commit_batch(
            &self,
            records: Vec<StateRecord>,
        ) -> LocalBoxFuture<'static, crate::durable::BatchCommit> {
            let last = match records.last() {
                Some(StateRecord::QueueOrder { waiting, .. }) => waiting.len(),
                _ => 0,
            };
            self.0.borrow_mut().push((records.len(), last));
            let mut fail = self.1.borrow_mut();
            let result = if *fail > 0 {
                *fail -= 1;
                Err((OutboxError::Unavailable("injected".into()), records))
            } else {
                Ok(crate::durable::latest_per_key(records).len())
            };
            Box::pin(std::future::ready(result))
        }
    }

    /// Goal: the writer hands a store its batch as taken (several records
    /// of a key, not coalesced nor copied on the actors' thread), retries
    /// with the records the store handed back after a failure, and counts
    /// what the store says it wrote. Method: three records of one queue
    /// and one of the token reservation in one batch, the first attempt
    /// failing.
    #[actix_rt::test]
    async fn a_failed_batch_comes_back_whole_for_the_retry() {
        tokio::time::pause();
        let attempts = Rc::new(RefCell::new(Vec::new()));
        let failures = Rc::new(RefCell::new(1));
        let (writer, state) = OutboxWriter::spawn_with_state(
            Rc::new(MemoryOutbox::new()),
            Rc::new(BatchStore(attempts.clone(), failures.clone())),
            None,
        );
        state.persist(StateRecord::Tokens {
            reserved_through: 1_024,
        });
        for n in 1..=3 {
            state.persist(order(n));
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert_eq!(
            *attempts.borrow(),
            vec![(4, 3), (4, 3)],
            "the same four records, latest last, in both attempts"
        );
        assert_eq!(*failures.borrow(), 0);
        let s = writer.status();
        assert_eq!((s.states_pending, s.states_written), (0, 2));
        assert_eq!((s.failures_in_row, s.last_error), (0, None));
    }
}
