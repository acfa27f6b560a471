//! The actors' state store, backed by a state tree of the data directory:
//! committing the [`StateRecord`]s the outbox writer hands over (one JSON
//! value per `StateKey`, as [`edgecc_actors::durable`] says), and reading
//! them back into a [`StateSnapshot`] at start.
//!
//! The writer commits a batch's state records only once the CRM records
//! queued before them are durable (see `edgecc_actors::outbox`), so this
//! store never makes a state durable ahead of its records. A batch's
//! records are one atomic `StateTree::apply` (one group commit, one log
//! frame): a power cut keeps all of a batch or none of it.

use edgecc_actors::durable::{latest_per_key, BatchCommit, StateRecord, StateSnapshot, StateStore};
use edgecc_actors::ports::{LocalBoxFuture, OutboxError};
use edgecc_storage::{StateTree, Storage, StorageError};
use tracing::error;

/// [`StateStore`] over a [`StateTree`].
pub struct TreeStateStore {
    /// The tree holding one record per key.
    tree: StateTree,
    /// A handle on the storage, declared after `tree` so it is dropped
    /// after it: when this store holds the last handle, the storage closes
    /// with no sled tree of ours still open (a `StateTree` alone drops its
    /// storage handle before its sled tree, and the close then waits its
    /// full bound for sled to let go).
    _storage: Storage,
}

impl TreeStateStore {
    /// A store writing to `tree`, a tree of `storage`.
    pub fn new(tree: StateTree, storage: Storage) -> Self {
        TreeStateStore {
            tree,
            _storage: storage,
        }
    }
}

/// One write of a batch: the key, and the value to put (`None`: remove).
type Write = (Vec<u8>, Option<Vec<u8>>);

/// The write `record` asks for, or why it cannot be encoded.
fn write_of(record: &StateRecord) -> Result<Write, serde_json::Error> {
    let key = record.key().to_bytes();
    if record.is_removal() {
        return Ok((key, None));
    }
    serde_json::to_vec(record).map(|value| (key, Some(value)))
}

impl StateStore for TreeStateStore {
    fn commit(
        &self,
        records: Vec<StateRecord>,
    ) -> LocalBoxFuture<'static, Result<(), OutboxError>> {
        let tree = self.tree.clone();
        Box::pin(async move {
            // JSON encoding costs tens of microseconds per call record: done
            // off the actors' thread, so a batch never delays routing.
            let writes = actix_rt::task::spawn_blocking(move || encode(&records))
                .await
                .map_err(|e| OutboxError::Unavailable(format!("state encoder: {e}")))?;
            // One atomic storage batch: after a power cut the state tree
            // holds all of this batch's records or none, never an agent's
            // new state without the call's that goes with it.
            tree.apply(writes).await.map_err(storage_error)
        })
    }

    /// The writer's batch: coalesced per key, encoded and, once durable,
    /// freed on a blocking thread, so the actors' thread neither copies nor
    /// walks a batch (a call record is a few KiB of nested values); handed
    /// back on an error for the writer's retry.
    fn commit_batch(&self, records: Vec<StateRecord>) -> LocalBoxFuture<'static, BatchCommit> {
        let tree = self.tree.clone();
        Box::pin(async move {
            let joined = actix_rt::task::spawn_blocking(move || {
                let latest = latest_per_key(records);
                // Caught, so the records come back for the retry (a
                // panicking encoder is a bug, surfaced as a stalled writer,
                // never a lost record).
                let encoded =
                    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| encode(&latest)));
                (latest, encoded)
            })
            .await;
            let (latest, encoded) = match joined {
                Ok(done) => done,
                // Panics are caught above: only a runtime shutting down
                // before the task ran gets here, and the batch goes with it.
                Err(e) => {
                    error!(error = %e, "State encoder did not run; batch not written.");
                    let e = OutboxError::Unavailable(format!("state encoder: {e}"));
                    return Err((e, Vec::new()));
                }
            };
            let writes = match encoded {
                Ok(writes) => writes,
                Err(_) => {
                    let e = OutboxError::Unavailable("state encoder panicked".into());
                    return Err((e, latest));
                }
            };
            let written = latest.len();
            match tree.apply(writes).await {
                Ok(()) => {
                    // Freed off the actors' thread too.
                    drop(actix_rt::task::spawn_blocking(move || drop(latest)));
                    Ok(written)
                }
                Err(e) => Err((storage_error(e), latest)),
            }
        })
    }
}

/// The writes `records` ask for, in order.
fn encode(records: &[StateRecord]) -> Vec<Write> {
    let mut writes = Vec::with_capacity(records.len());
    for record in records {
        match write_of(record) {
            Ok(w) => writes.push(w),
            // A domain value that cannot be JSON is a bug, not a disk
            // problem: retrying would stall every later record, so it is
            // logged and left out.
            Err(e) => error!(key = ?record.key(), error = %e,
                "State record cannot be encoded; not written."),
        }
    }
    writes
}

fn storage_error(e: StorageError) -> OutboxError {
    OutboxError::Unavailable(e.to_string())
}

/// What [`read_snapshot`] found.
#[derive(Debug, Default)]
pub struct LoadedState {
    /// The latest record of every key that decoded.
    pub snapshot: StateSnapshot,
    /// Records read and used.
    pub records: usize,
    /// Records that did not decode (or sat under another key), logged and
    /// skipped.
    pub skipped: usize,
}

impl LoadedState {
    /// Whether anything was read: a system with no record starts fresh.
    pub fn is_empty(&self) -> bool {
        self.records == 0
    }
}

/// Reads every state record of `tree` (not the history after them) into
/// a snapshot. A value that does not
/// decode, or whose record belongs to another key, is logged (with its key)
/// and skipped; an unreadable entry is logged and skipped too. Never
/// panics on what the disk holds.
pub fn read_snapshot(tree: &StateTree) -> LoadedState {
    let mut loaded = LoadedState::default();
    let mut records = Vec::new();
    for entry in tree.iter() {
        let (key, value) = match entry {
            Ok(kv) => kv,
            Err(e) => {
                error!(error = %e, "State record unreadable; skipped.");
                loaded.skipped += 1;
                continue;
            }
        };
        // History (call detail records, agent intervals) sorts after
        // every state key: the state ends where it begins.
        if key.first() == Some(&edgecc_actors::cdr::HISTORY_KEY_PREFIX) {
            break;
        }
        let shown = String::from_utf8_lossy(&key).into_owned();
        match serde_json::from_slice::<StateRecord>(&value) {
            Ok(record) if record.key().to_bytes() == key && !record.is_removal() => {
                records.push(record)
            }
            Ok(record) => {
                error!(key = %shown, record_key = ?record.key(),
                    "State record stored under another key; skipped.");
                loaded.skipped += 1;
            }
            Err(e) => {
                error!(key = %shown, error = %e, "State record does not decode; skipped.");
                loaded.skipped += 1;
            }
        }
    }
    loaded.records = records.len();
    loaded.snapshot = StateSnapshot::from_records(records);
    loaded
}

#[cfg(test)]
mod tests {
    use super::*;
    use edgecc_actors::durable::StateKey;
    use edgecc_actors::{CallId, QueueId};
    use edgecc_storage::StorageConfig;

    /// Goal: records come back as committed, a removal deletes its key,
    /// and what does not decode (or sits under another key) is skipped,
    /// never a panic. Method: commit through the store, write two bad
    /// values beside them, read the snapshot back.
    #[actix_rt::test]
    async fn records_round_trip_and_bad_ones_are_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let storage = Storage::open(dir.path(), StorageConfig::default()).unwrap();
        let tree = storage.state("actor_state").unwrap();
        let store = TreeStateStore::new(tree.clone(), storage.clone());
        tree.put(b"c/gone", b"{}").await.unwrap();
        store
            .commit(vec![
                StateRecord::QueueOrder {
                    queue: QueueId::new("q"),
                    waiting: vec![CallId::new("c1"), CallId::new("c2")],
                },
                StateRecord::Tokens {
                    reserved_through: 2_048,
                },
                StateRecord::CallRemoved(CallId::new("gone")),
            ])
            .await
            .unwrap();
        assert!(tree.get(b"c/gone").unwrap().is_none(), "removed");
        tree.put(b"a/broken", b"{not json").await.unwrap();
        let elsewhere = serde_json::to_vec(&StateRecord::Tokens {
            reserved_through: 9_999_999,
        })
        .unwrap();
        tree.put(b"q/other", &elsewhere).await.unwrap();
        let loaded = read_snapshot(&tree);
        assert_eq!((loaded.records, loaded.skipped), (2, 2));
        assert_eq!(
            loaded.snapshot.queues[&QueueId::new("q")],
            vec![CallId::new("c1"), CallId::new("c2")]
        );
        assert_eq!(loaded.snapshot.tokens_reserved_through, 2_048);
        assert!(tree.get(&StateKey::Tokens.to_bytes()).unwrap().is_some());
    }

    /// Goal: the writer's batch is committed as the latest record of each
    /// key (a later put wins, a removal deletes a stored key), all of it
    /// durable when the commit resolves, with the count written. Method:
    /// one batch with two orders of one queue, the tokens and the removal
    /// of a call stored before; read the tree back.
    #[actix_rt::test]
    async fn a_batch_is_committed_latest_per_key() {
        let dir = tempfile::tempdir().unwrap();
        let storage = Storage::open(dir.path(), StorageConfig::default()).unwrap();
        let tree = storage.state("actor_state").unwrap();
        let store = TreeStateStore::new(tree.clone(), storage.clone());
        let order = |n: usize| StateRecord::QueueOrder {
            queue: QueueId::new("q"),
            waiting: (0..n).map(|i| CallId::new(format!("c{i}"))).collect(),
        };
        tree.put(b"c/gone", b"{}").await.unwrap();
        let written = store
            .commit_batch(vec![
                order(1),
                StateRecord::Tokens {
                    reserved_through: 1_024,
                },
                order(3),
                StateRecord::CallRemoved(CallId::new("gone")),
            ])
            .await
            .map_err(|(e, _)| e)
            .unwrap();
        assert_eq!(written, 3, "one record per key");
        assert!(tree.get(b"c/gone").unwrap().is_none(), "removed");
        let loaded = read_snapshot(&tree);
        assert_eq!(loaded.records, 2);
        assert_eq!(loaded.snapshot.queues[&QueueId::new("q")].len(), 3);
        assert_eq!(loaded.snapshot.tokens_reserved_through, 1_024);
    }

    /// Goal: the history the actors write beside their state (agent
    /// intervals under `~g/`) is never read as state at a restart, however
    /// much of it there is. Method: commit state and history records
    /// through the store, read the snapshot back.
    #[actix_rt::test]
    async fn history_is_not_read_as_state() {
        use edgecc_actors::cdr::agent::AgentInterval;
        let dir = tempfile::tempdir().unwrap();
        let storage = Storage::open(dir.path(), StorageConfig::default()).unwrap();
        let tree = storage.state("actor_state").unwrap();
        let store = TreeStateStore::new(tree.clone(), storage.clone());
        let mut records = vec![StateRecord::Tokens {
            reserved_through: 1_024,
        }];
        records.extend((0..300).map(|i| {
            StateRecord::AgentInterval(AgentInterval {
                agent: edgecc_actors::AgentId::new("a1"),
                state: "ready".into(),
                reason: None,
                start_ms: i * 10,
                end_ms: i * 10 + 5,
            })
        }));
        store.commit(records).await.unwrap();
        assert_eq!(tree.iter().count(), 301, "the history is stored");
        let loaded = read_snapshot(&tree);
        assert_eq!((loaded.records, loaded.skipped), (1, 0));
        assert_eq!(loaded.snapshot.tokens_reserved_through, 1_024);
    }
}
