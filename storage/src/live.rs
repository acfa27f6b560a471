//! Which log segment holds the latest put of every live entry, and how
//! many live bytes each segment holds: what decides when a segment can be
//! retired and what must be copied forward first.
//!
//! Built by scanning the log on open, then kept up to date by the writer
//! for every frame it appends. An entry is *live* while its latest op is
//! a put; its location is the segment of that put. A removal is never
//! tracked: it only matters while an older segment holds a put of its key,
//! and segments are retired oldest first (see `seglog`).
//!
//! Memory: keys of exactly 8 bytes (sequences, chunk numbers: nearly all
//! entries) live in a `BTreeMap<u64, u64>` per tree, about 20-30 bytes an
//! entry; other keys (state, meta) in a hash map.

use std::collections::{BTreeMap, HashMap};

use crate::wal::ReplayOp;

/// A location: segment number (high 32 bits) and the put's size in bytes
/// (low 32 bits).
type Loc = u64;

fn loc(seg: u64, bytes: u64) -> Loc {
    (seg.min(u64::from(u32::MAX)) << 32) | bytes.min(u64::from(u32::MAX))
}

fn loc_seg(l: Loc) -> u64 {
    l >> 32
}

fn loc_bytes(l: Loc) -> u64 {
    l & u64::from(u32::MAX)
}

/// The live entries of one tree.
#[derive(Default)]
struct TreeLive {
    /// Entries with an 8-byte key, by the key read big-endian.
    short: BTreeMap<u64, Loc>,
    /// Entries with any other key.
    other: HashMap<Box<[u8]>, Loc>,
}

/// The live map of the whole log.
#[derive(Default)]
pub(crate) struct Live {
    /// Per tree name.
    trees: HashMap<Box<[u8]>, TreeLive>,
    /// Live bytes per segment.
    seg_live: BTreeMap<u64, u64>,
    /// Bytes of puts ever written per segment (live or not).
    seg_total: BTreeMap<u64, u64>,
}

/// The size an op is counted at: key and value, plus a small overhead.
fn op_bytes(op: &ReplayOp<'_>) -> u64 {
    (op.tree.len() + op.key.len() + op.value.map_or(0, <[u8]>::len) + 10) as u64
}

impl Live {
    /// Notes one op appended to segment `seg`.
    pub(crate) fn note(&mut self, seg: u64, op: &ReplayOp<'_>) {
        let tree = match self.trees.get_mut(op.tree) {
            Some(t) => t,
            None => self.trees.entry(op.tree.into()).or_default(),
        };
        let new = op.value.map(|_| loc(seg, op_bytes(op)));
        let old = match (<[u8; 8]>::try_from(op.key), new) {
            (Ok(k), Some(l)) => tree.short.insert(u64::from_be_bytes(k), l),
            (Ok(k), None) => tree.short.remove(&u64::from_be_bytes(k)),
            (Err(_), Some(l)) => tree.other.insert(op.key.into(), l),
            (Err(_), None) => tree.other.remove(op.key),
        };
        if let Some(old) = old {
            if let Some(live) = self.seg_live.get_mut(&loc_seg(old)) {
                *live = live.saturating_sub(loc_bytes(old));
            }
        }
        if let Some(l) = new {
            *self.seg_live.entry(seg).or_default() += loc_bytes(l);
            *self.seg_total.entry(seg).or_default() += loc_bytes(l);
        }
    }

    /// Whether the latest put of `tree`/`key` is in segment `seg`.
    pub(crate) fn is_in(&self, seg: u64, tree: &[u8], key: &[u8]) -> bool {
        self.location(tree, key).is_some_and(|l| loc_seg(l) == seg)
    }

    /// Whether `tree`/`key` is live (its latest op is a put).
    pub(crate) fn contains(&self, tree: &[u8], key: &[u8]) -> bool {
        self.location(tree, key).is_some()
    }

    fn location(&self, tree: &[u8], key: &[u8]) -> Option<Loc> {
        let t = self.trees.get(tree)?;
        match <[u8; 8]>::try_from(key) {
            Ok(k) => t.short.get(&u64::from_be_bytes(k)).copied(),
            Err(_) => t.other.get(key).copied(),
        }
    }

    /// Live bytes in segment `seg`, and bytes of puts ever written there.
    pub(crate) fn segment(&self, seg: u64) -> (u64, u64) {
        (
            self.seg_live.get(&seg).copied().unwrap_or(0),
            self.seg_total.get(&seg).copied().unwrap_or(0),
        )
    }

    /// Live bytes and bytes of puts of the whole log.
    pub(crate) fn totals(&self) -> (u64, u64) {
        (self.seg_live.values().sum(), self.seg_total.values().sum())
    }

    /// Forgets a retired segment (nothing live may be left in it).
    pub(crate) fn forget_segment(&mut self, seg: u64) {
        self.seg_live.remove(&seg);
        self.seg_total.remove(&seg);
    }

    /// Live entries in all trees.
    #[cfg(test)]
    pub(crate) fn entries(&self) -> u64 {
        self.trees
            .values()
            .map(|t| (t.short.len() + t.other.len()) as u64)
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put<'a>(tree: &'a [u8], key: &'a [u8], value: &'a [u8]) -> ReplayOp<'a> {
        ReplayOp {
            tree,
            key,
            value: Some(value),
        }
    }

    #[test]
    fn the_latest_put_decides_where_an_entry_lives() {
        let mut live = Live::default();
        let k = 7u64.to_be_bytes();
        live.note(1, &put(b"outbox", &k, &[0; 90]));
        live.note(1, &put(b"state/x", b"call-1", &[0; 40]));
        assert!(live.is_in(1, b"outbox", &k));
        assert_eq!(live.segment(1).0, live.segment(1).1);
        // Rewritten in segment 2: segment 1 keeps only the state entry.
        live.note(2, &put(b"outbox", &k, &[1; 90]));
        assert!(!live.is_in(1, b"outbox", &k) && live.is_in(2, b"outbox", &k));
        assert_eq!(live.segment(1).0, (7 + 6 + 40 + 10) as u64);
        // Removed: nowhere live, its bytes leave segment 2.
        live.note(
            3,
            &ReplayOp {
                tree: b"outbox",
                key: &k,
                value: None,
            },
        );
        assert!(!live.contains(b"outbox", &k));
        assert_eq!(live.segment(2).0, 0);
        assert_eq!(live.entries(), 1);
    }
}
