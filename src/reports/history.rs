//! Call history on disk: reading the call detail records and agent
//! intervals of a time range back from the actors' state tree, and pruning
//! the oldest by age and by bytes.
//!
//! The records are written by the actors through the outbox writer (see
//! `edgecc_actors::cdr`), under keys that sort by time, after every state
//! key: `~c/{arrived_ms:020}/{call}` and `~g/{start_ms:020}/{agent}`. A
//! read is a key range; pruning removes keys from the front of each range.

use edgecc_actors::cdr::agent::AgentInterval;
use edgecc_actors::cdr::{
    call_detail_key_from, CallDetailRecord, AGENT_INTERVAL_KEY_PREFIX, CALL_DETAIL_KEY_PREFIX,
};
use edgecc_actors::durable::StateRecord;
use edgecc_storage::{StateTree, StorageError};
use tokio::sync::watch;
use tracing::{info, warn};

use super::config::ReportSettings;
use super::time::DAY_MS;

/// How long before a report's start a call may have arrived and still
/// join a queue inside it (calls are keyed by arrival): 6 hours.
pub const CALL_LOOKBACK_MS: u64 = 6 * 3_600_000;
/// How long before a report's start an agent's state may have begun and
/// still last into it: 24 hours.
pub const INTERVAL_LOOKBACK_MS: u64 = DAY_MS;
/// Most records one read returns: bounds a report's memory (about 1 KiB
/// each); a wider range is refused with a clear error.
pub const READ_RECORDS_MAX: usize = 1_000_000;
/// Most keys one prune round removes in one storage batch.
pub const PRUNE_BATCH_KEYS: usize = 1_024;

/// What a read found.
#[derive(Debug, Default)]
pub struct History {
    /// Call detail records, by arrival.
    pub calls: Vec<CallDetailRecord>,
    /// Agent intervals, by start.
    pub intervals: Vec<AgentInterval>,
    /// Records that did not decode (logged, skipped).
    pub skipped: usize,
}

/// Why a read failed.
#[derive(Debug, thiserror::Error)]
pub enum HistoryError {
    /// The storage could not be read.
    #[error("storage: {0}")]
    Storage(#[from] StorageError),
    /// The range holds more than [`READ_RECORDS_MAX`] records.
    #[error("the range holds more than {READ_RECORDS_MAX} records: ask for a shorter one")]
    TooMany,
}

/// The arrival or start time in a history key (`~c/{ms:020}/...`).
fn key_ms(key: &[u8], prefix: &str) -> Option<u64> {
    let rest = key.strip_prefix(prefix.as_bytes())?;
    std::str::from_utf8(rest.get(..20)?).ok()?.parse().ok()
}

/// Reads the history that may touch `[from_ms, to_ms)`.
pub fn read(tree: &StateTree, from_ms: u64, to_ms: u64) -> Result<History, HistoryError> {
    let mut h = History::default();
    let start = call_detail_key_from(from_ms.saturating_sub(CALL_LOOKBACK_MS));
    for entry in tree.iter_from(&start) {
        let (key, value) = entry?;
        match key_ms(&key, CALL_DETAIL_KEY_PREFIX) {
            Some(at) if at < to_ms => {}
            _ => break,
        }
        match serde_json::from_slice::<StateRecord>(&value) {
            Ok(StateRecord::CallDetail(r)) => h.calls.push(*r),
            _ => {
                warn!(key = %String::from_utf8_lossy(&key), "Call detail record does not decode; skipped.");
                h.skipped += 1;
            }
        }
        if h.calls.len() > READ_RECORDS_MAX {
            return Err(HistoryError::TooMany);
        }
    }
    let from = from_ms.saturating_sub(INTERVAL_LOOKBACK_MS);
    let start = format!("{AGENT_INTERVAL_KEY_PREFIX}{from:020}/").into_bytes();
    for entry in tree.iter_from(&start) {
        let (key, value) = entry?;
        match key_ms(&key, AGENT_INTERVAL_KEY_PREFIX) {
            Some(at) if at < to_ms => {}
            _ => break,
        }
        match serde_json::from_slice::<StateRecord>(&value) {
            Ok(StateRecord::AgentInterval(i)) if i.end_ms > from_ms => h.intervals.push(i),
            Ok(StateRecord::AgentInterval(_)) => {}
            _ => {
                warn!(key = %String::from_utf8_lossy(&key), "Agent interval does not decode; skipped.");
                h.skipped += 1;
            }
        }
        if h.intervals.len() > READ_RECORDS_MAX {
            return Err(HistoryError::TooMany);
        }
    }
    Ok(h)
}

/// What one prune round removed.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Pruned {
    /// Keys removed for their age.
    pub by_age: usize,
    /// Keys removed to get under the byte limit.
    pub by_bytes: usize,
    /// History bytes (keys and values) left.
    pub bytes_left: u64,
}

/// Removes history older than `settings.retention_days` before `now_ms`,
/// then the oldest records (calls and agent intervals alike, by time)
/// until the history holds at most `settings.retention_bytes` of keys and
/// values. The scan runs on a blocking thread, never the actors'.
pub async fn prune(
    tree: &StateTree,
    settings: &ReportSettings,
    now_ms: u64,
) -> Result<Pruned, StorageError> {
    let (scan_tree, limits) = (tree.clone(), settings.clone());
    let (doomed, out) =
        actix_rt::task::spawn_blocking(move || plan_prune(&scan_tree, &limits, now_ms))
            .await
            .map_err(|e| StorageError::Commit {
                message: format!("history scan: {e}"),
            })??;
    for chunk in doomed.chunks(PRUNE_BATCH_KEYS) {
        tree.apply(chunk.iter().map(|k| (k.clone(), None)).collect())
            .await?;
    }
    if out.by_age + out.by_bytes > 0 {
        info!(
            by_age = out.by_age,
            by_bytes = out.by_bytes,
            bytes_left = out.bytes_left,
            "Call history pruned."
        );
    }
    Ok(out)
}

/// The keys a prune removes, and what is left.
fn plan_prune(
    tree: &StateTree,
    settings: &ReportSettings,
    now_ms: u64,
) -> Result<(Vec<Vec<u8>>, Pruned), StorageError> {
    let cutoff = now_ms.saturating_sub(settings.retention_days.saturating_mul(DAY_MS));
    let mut out = Pruned::default();
    // (key, bytes, time) of every history record.
    let mut all: Vec<(Vec<u8>, u64, u64)> = Vec::new();
    for prefix in [CALL_DETAIL_KEY_PREFIX, AGENT_INTERVAL_KEY_PREFIX] {
        for entry in tree.iter_from(prefix.as_bytes()) {
            let (key, value) = entry?;
            if !key.starts_with(prefix.as_bytes()) {
                break;
            }
            let at = key_ms(&key, prefix).unwrap_or(0);
            let bytes = (key.len() + value.len()) as u64;
            all.push((key, bytes, at));
        }
    }
    let mut total: u64 = all.iter().map(|k| k.1).sum();
    all.sort_by_key(|k| k.2);
    let mut doomed = Vec::new();
    for (key, bytes, at) in all {
        if at < cutoff {
            out.by_age += 1;
        } else if total > settings.retention_bytes {
            out.by_bytes += 1;
        } else {
            break;
        }
        total -= bytes;
        doomed.push(key);
    }
    out.bytes_left = total;
    Ok((doomed, out))
}

/// Prunes every `prune_every_ms` of the current settings until the task
/// is dropped (the first round right away, and again at once when a reload
/// changes the settings). A failed round is logged and retried at the
/// next.
pub async fn prune_forever(tree: StateTree, mut settings: watch::Receiver<ReportSettings>) {
    loop {
        let now = settings.borrow_and_update().clone();
        if let Err(e) = prune(&tree, &now, crate::clock::now_ms()).await {
            warn!(error = %e, "Call history prune failed; retried at the next round.");
        }
        let every = std::time::Duration::from_millis(now.prune_every_ms);
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            changed = settings.changed() => {
                if changed.is_err() {
                    // The holder is gone: keep the last settings.
                    tokio::time::sleep(every).await;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use edgecc_actors::cdr::agent::AgentInterval;
    use edgecc_storage::{Storage, StorageConfig};

    fn interval(start_ms: u64) -> StateRecord {
        StateRecord::AgentInterval(AgentInterval {
            agent: edgecc_actors::AgentId::new("a1"),
            state: "ready".into(),
            reason: None,
            start_ms,
            end_ms: start_ms + 1,
        })
    }

    /// Goal: a prune removes what is older than the retention age, then
    /// the oldest until the history fits the byte limit, and never a state
    /// key; a read of a range finds what is left. Method: history records
    /// written through the state store at known times, pruned with known
    /// limits.
    #[actix_rt::test]
    async fn prune_keeps_the_newest_within_age_and_bytes() {
        use edgecc_actors::durable::StateStore;
        let dir = tempfile::tempdir().unwrap();
        let storage = Storage::open(dir.path(), StorageConfig::default()).unwrap();
        let tree = storage.state("actor_state").unwrap();
        let store = crate::state_port::TreeStateStore::new(tree.clone(), storage.clone());
        let now = 100 * DAY_MS;
        // Ten records 3 days old, 20 of one day old, plus a state key.
        let mut records = vec![StateRecord::Tokens {
            reserved_through: 5,
        }];
        records.extend((0..10).map(|i| interval(now - 3 * DAY_MS + i)));
        records.extend((0..20).map(|i| interval(now - DAY_MS + i)));
        store.commit(records).await.unwrap();
        let one = {
            let (k, v) = tree.iter().last().unwrap().unwrap();
            (k.len() + v.len()) as u64
        };
        let settings = ReportSettings {
            retention_days: 2,
            retention_bytes: 15 * one,
            ..Default::default()
        };
        let out = prune(&tree, &settings, now).await.unwrap();
        assert_eq!((out.by_age, out.by_bytes), (10, 5), "{out:?}");
        assert_eq!(out.bytes_left, 15 * one);
        let h = read(&tree, now - 2 * DAY_MS, now).unwrap();
        let starts: Vec<u64> = h.intervals.iter().map(|i| i.start_ms).collect();
        assert_eq!(
            starts,
            ((now - DAY_MS + 5)..(now - DAY_MS + 20)).collect::<Vec<_>>()
        );
        assert!(tree.get(b"t").unwrap().is_some(), "state is never pruned");
        let again = prune(&tree, &settings, now).await.unwrap();
        assert_eq!((again.by_age, again.by_bytes), (0, 0));
    }

    /// Goal: the running pruner applies a reloaded retention at once, not
    /// after its (hour-long) interval. Method: records 3 days old kept by
    /// 90 days of retention; the settings change to 2 days; the records go
    /// within seconds.
    #[actix_rt::test]
    async fn the_pruner_applies_new_settings_at_once() {
        use edgecc_actors::durable::StateStore;
        let dir = tempfile::tempdir().unwrap();
        let storage = Storage::open(dir.path(), StorageConfig::default()).unwrap();
        let tree = storage.state("actor_state").unwrap();
        let store = crate::state_port::TreeStateStore::new(tree.clone(), storage.clone());
        let now = crate::clock::now_ms();
        store
            .commit((0..10).map(|i| interval(now - 3 * DAY_MS + i)).collect())
            .await
            .unwrap();
        let live = crate::reports::live::LiveSettings::new(ReportSettings {
            prune_every_ms: 3_600_000,
            ..Default::default()
        });
        let task = actix_rt::spawn(prune_forever(tree.clone(), live.subscribe()));
        let left = || read(&tree, now - 4 * DAY_MS, now).unwrap().intervals.len();
        actix_rt::time::sleep(std::time::Duration::from_millis(300)).await;
        assert_eq!(left(), 10, "kept by 90 days");
        let shorter = ReportSettings {
            retention_days: 2,
            prune_every_ms: 3_600_000,
            ..Default::default()
        };
        live.set(shorter);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while left() > 0 {
            assert!(
                std::time::Instant::now() < deadline,
                "not pruned after the change"
            );
            actix_rt::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        task.abort();
    }
}
