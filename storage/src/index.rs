//! The in-memory delivery index: which records are ready, in flight, waiting
//! for their backoff, or held behind a dead letter.
//!
//! sled holds the truth; this index is rebuilt from it on open and changed
//! by the writer only after a change is durable (plus `take`, which marks
//! records in flight and is not persisted). Interaction keys are kept as a
//! 64-bit hash, not as strings, so the index costs about 40-60 bytes per
//! pending record. Two keys with the same hash would merely be serialized
//! together (still each in order); they never reorder.

use std::collections::hash_map::DefaultHasher;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::hash::{Hash, Hasher};

/// The ordering key of an interaction, as kept in memory.
pub(crate) type KeyHash = u64;

/// Hashes an interaction key (deterministic SipHash with zero keys).
pub(crate) fn key_hash(key: &str) -> KeyHash {
    let mut hasher = DefaultHasher::new();
    key.hash(&mut hasher);
    hasher.finish()
}

/// The delivery index. See the `outbox` module header for the rules.
#[derive(Debug, Default)]
pub(crate) struct Index {
    /// Every pending record (including in-flight ones), grouped by key then
    /// ordered by sequence: the first entry of a key is its head.
    pending: BTreeSet<(KeyHash, u64)>,
    /// Heads that may be delivered now, by sequence, so the oldest and the
    /// newest ready key are both one step away (fairness).
    ready: BTreeMap<u64, KeyHash>,
    /// Heads waiting for their retry time, by (not-before ms, sequence).
    waiting: BTreeMap<(u64, u64), KeyHash>,
    /// Retry times of pending records that have one (sparse: only records
    /// that failed at least once).
    not_before: HashMap<u64, u64>,
    /// Records handed out by `take` and not settled yet, with their key.
    in_flight: HashMap<u64, KeyHash>,
    /// Dead-lettered sequences of each key: any pending record of the key
    /// above the lowest of them is held.
    dead_by_key: HashMap<KeyHash, BTreeSet<u64>>,
    /// Number of dead letters (with or without a known key).
    dead_count: u64,
    /// Sequences the writer is moving right now; `take` skips them.
    claimed: HashSet<u64>,
    /// Which end of `ready` the next `take` serves (alternates).
    newest_next: bool,
    /// Records given to [`Index::load`], put into `pending` in one bulk
    /// build by [`Index::finish_load`] (much faster than one by one).
    loading: Vec<(KeyHash, u64)>,
}

impl Index {
    fn head(&self, key: KeyHash) -> Option<u64> {
        self.pending
            .range((key, 0)..=(key, u64::MAX))
            .next()
            .map(|&(_, seq)| seq)
    }

    fn unqueue_head(&mut self, key: KeyHash) {
        if let Some(head) = self.head(key) {
            self.ready.remove(&head);
            if let Some(&nb) = self.not_before.get(&head) {
                self.waiting.remove(&(nb, head));
            }
        }
    }

    fn queue_head(&mut self, key: KeyHash) {
        let Some(head) = self.head(key) else { return };
        if self.in_flight.contains_key(&head) {
            return;
        }
        if let Some(dead) = self.dead_by_key.get(&key) {
            if dead.first().is_some_and(|&d| d < head) {
                return;
            }
        }
        match self.not_before.get(&head) {
            Some(&nb) if nb > 0 => {
                self.waiting.insert((nb, head), key);
            }
            _ => {
                self.ready.insert(head, key);
            }
        }
    }

    /// Runs a change to one key's records, keeping its head's queue entry
    /// consistent.
    fn with_key(&mut self, key: KeyHash, change: impl FnOnce(&mut Index)) {
        self.unqueue_head(key);
        change(self);
        self.queue_head(key);
    }

    /// A durable pending record (append, reopen, re-queue).
    pub(crate) fn add_pending(&mut self, seq: u64, key: KeyHash, not_before_ms: u64) {
        self.with_key(key, |idx| {
            idx.pending.insert((key, seq));
            if not_before_ms > 0 {
                idx.not_before.insert(seq, not_before_ms);
            }
        });
    }

    /// Bulk load on open: a pending record, given in sequence order. Heads
    /// are queued by [`Index::finish_load`], once.
    pub(crate) fn load(&mut self, seq: u64, key: KeyHash, not_before_ms: u64) {
        self.loading.push((key, seq));
        if not_before_ms > 0 {
            self.not_before.insert(seq, not_before_ms);
        }
    }

    /// Ends a bulk load: queues every key's head.
    pub(crate) fn finish_load(&mut self) {
        let mut loaded = std::mem::take(&mut self.loading);
        loaded.sort_unstable();
        if self.pending.is_empty() {
            self.pending = loaded.into_iter().collect();
        } else {
            self.pending.extend(loaded);
        }
        let mut keys = Vec::new();
        for &(key, _) in &self.pending {
            if keys.last() != Some(&key) {
                keys.push(key);
            }
        }
        for key in keys {
            self.unqueue_head(key);
            self.queue_head(key);
        }
    }

    /// Hands out up to `max` ready records, alternating between the oldest
    /// and the newest ready key, never more than `in_flight_max` in flight.
    pub(crate) fn take(
        &mut self,
        max: usize,
        now_ms: u64,
        in_flight_max: usize,
    ) -> Vec<(u64, KeyHash)> {
        while let Some((&(nb, seq), &key)) = self.waiting.first_key_value() {
            if nb > now_ms {
                break;
            }
            self.waiting.remove(&(nb, seq));
            self.ready.insert(seq, key);
        }
        let budget = max.min(in_flight_max.saturating_sub(self.in_flight.len()));
        let mut out = Vec::with_capacity(budget.min(self.ready.len()));
        let mut skipped = Vec::new();
        while out.len() < budget {
            let next = if self.newest_next {
                self.ready.pop_last()
            } else {
                self.ready.pop_first()
            };
            let Some((seq, key)) = next else { break };
            if self.claimed.contains(&seq) {
                skipped.push((seq, key));
                continue;
            }
            self.newest_next = !self.newest_next;
            self.in_flight.insert(seq, key);
            out.push((seq, key));
        }
        self.ready.extend(skipped);
        out
    }

    /// Whether `seq` is in flight, and its key.
    pub(crate) fn in_flight_key(&self, seq: u64) -> Option<KeyHash> {
        self.in_flight.get(&seq).copied()
    }

    /// Whether `seq` is in flight.
    pub(crate) fn is_in_flight(&self, seq: u64) -> bool {
        self.in_flight.contains_key(&seq)
    }

    /// A durable ack: the record is gone.
    pub(crate) fn ack(&mut self, seq: u64) {
        let Some(key) = self.in_flight.get(&seq).copied() else {
            return;
        };
        self.with_key(key, |idx| {
            idx.in_flight.remove(&seq);
            idx.pending.remove(&(key, seq));
            idx.not_before.remove(&seq);
        });
    }

    /// A durable retry: back to pending, not before `not_before_ms`.
    pub(crate) fn retry(&mut self, seq: u64, not_before_ms: u64) {
        let Some(key) = self.in_flight.get(&seq).copied() else {
            return;
        };
        self.with_key(key, |idx| {
            idx.in_flight.remove(&seq);
            if not_before_ms > 0 {
                idx.not_before.insert(seq, not_before_ms);
            } else {
                idx.not_before.remove(&seq);
            }
        });
    }

    /// A pending or in-flight record was made a dead letter. With `holds`,
    /// it keeps holding its key's later records.
    pub(crate) fn make_dead(&mut self, seq: u64, key: KeyHash, holds: bool) {
        self.with_key(key, |idx| {
            idx.in_flight.remove(&seq);
            idx.pending.remove(&(key, seq));
            idx.not_before.remove(&seq);
            if holds {
                idx.dead_by_key.entry(key).or_default().insert(seq);
            }
        });
        self.dead_count += 1;
    }

    /// Forgets a pending record found corrupt (it goes to the dead letters
    /// without holding anything; see [`Index::add_dead_unheld`]).
    pub(crate) fn forget(&mut self, seq: u64, key: KeyHash) {
        self.with_key(key, |idx| {
            idx.in_flight.remove(&seq);
            idx.pending.remove(&(key, seq));
            idx.not_before.remove(&seq);
        });
    }

    /// A dead letter that holds nothing (its key is unknown).
    pub(crate) fn add_dead_unheld(&mut self) {
        self.dead_count += 1;
    }

    /// A dead letter of a known key (reopen).
    pub(crate) fn add_dead(&mut self, seq: u64, key: KeyHash) {
        self.with_key(key, |idx| {
            idx.dead_by_key.entry(key).or_default().insert(seq);
        });
        self.dead_count += 1;
    }

    /// A durable re-queue: the dead letter is pending again at its place.
    pub(crate) fn requeue(&mut self, seq: u64, key: KeyHash) {
        self.with_key(key, |idx| {
            if let Some(dead) = idx.dead_by_key.get_mut(&key) {
                dead.remove(&seq);
                if dead.is_empty() {
                    idx.dead_by_key.remove(&key);
                }
            }
            idx.pending.insert((key, seq));
            idx.not_before.remove(&seq);
        });
        self.dead_count = self.dead_count.saturating_sub(1);
    }

    /// Marks sequences as being moved by the writer.
    pub(crate) fn claim(&mut self, seq: u64) {
        self.claimed.insert(seq);
    }

    /// Releases every claim (end of a group commit).
    pub(crate) fn release_claims(&mut self) {
        self.claimed.clear();
    }

    /// Pending records, including in-flight ones.
    pub(crate) fn depth(&self) -> u64 {
        self.pending.len() as u64
    }

    /// Pending records (in flight included) and dead letters of `key`.
    pub(crate) fn key_counts(&self, key: KeyHash) -> (u64, u64) {
        let pending = self.pending.range((key, 0)..=(key, u64::MAX)).count() as u64;
        let dead = self.dead_by_key.get(&key).map_or(0, |d| d.len() as u64);
        (pending, dead)
    }

    /// Records in flight.
    pub(crate) fn in_flight_count(&self) -> u64 {
        self.in_flight.len() as u64
    }

    /// Dead letters.
    pub(crate) fn dead_count(&self) -> u64 {
        self.dead_count
    }

    /// Pending records held behind a dead letter of their key.
    pub(crate) fn held_count(&self) -> u64 {
        self.dead_by_key
            .iter()
            .filter_map(|(&key, dead)| dead.first().map(|&low| (key, low)))
            .map(|(key, low)| {
                self.pending
                    .range((key, low.saturating_add(1))..=(key, u64::MAX))
                    .count() as u64
            })
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A key's second record is not ready until its first is acked.
    #[test]
    fn one_in_flight_per_key() {
        let mut idx = Index::default();
        idx.add_pending(1, 7, 0);
        idx.add_pending(2, 7, 0);
        idx.add_pending(3, 8, 0);
        let first = idx.take(10, 0, 100);
        assert_eq!(first.len(), 2);
        assert!(idx.take(10, 0, 100).is_empty());
        idx.ack(1);
        assert_eq!(idx.take(10, 0, 100), vec![(2, 7)]);
    }

    /// A dead letter holds later records of its key until re-queued.
    #[test]
    fn dead_letter_holds_key() {
        let mut idx = Index::default();
        idx.add_pending(1, 7, 0);
        idx.add_pending(2, 7, 0);
        assert_eq!(idx.take(10, 0, 100), vec![(1, 7)]);
        idx.make_dead(1, 7, true);
        assert!(idx.take(10, 0, 100).is_empty());
        assert_eq!(idx.held_count(), 1);
        idx.requeue(1, 7);
        assert_eq!(idx.take(10, 0, 100), vec![(1, 7)]);
    }
}
