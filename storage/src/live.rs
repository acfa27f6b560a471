//! The live map: where the latest put of every live entry is in the log
//! (segment, and the value's offset and length there), and how many live
//! bytes each segment holds. It decides when a segment can be retired and
//! what must be copied forward first, it says exactly which entries exist
//! (the log is the truth), and it lets a read fetch a value from the log
//! while sled is not trusted (see the `read` module).
//!
//! Built by scanning the log on open, then kept up to date by the writer
//! for every frame it appends (under the `Shared::live` lock). An entry is
//! *live* while its latest op is a put. A removal is never tracked: it
//! only matters while an older segment holds a put of its key, and
//! segments are retired oldest first (see `seglog`).
//!
//! Memory: keys of exactly 8 bytes (sequences, chunk numbers: nearly all
//! entries) live in a `BTreeMap<u64, Loc>` per tree, about 25-35 bytes an
//! entry; other keys (state, meta) in a hash map.

use std::collections::{BTreeMap, HashMap};

use crate::wal::{decode_ops, ReplayOp};

/// Where an entry's latest put is: its segment, and the offset and length
/// of its value in that segment's file (what a read from the log needs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Loc {
    /// Segment number.
    pub(crate) seg: u32,
    /// Offset of the value's first byte in the segment file.
    pub(crate) off: u32,
    /// Length of the value.
    pub(crate) len: u32,
}

/// The live entries of one tree.
#[derive(Default)]
struct TreeLive {
    /// Entries with an 8-byte key, by the key read big-endian (so their
    /// order is the keys' byte order).
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

/// The size a put is counted at: tree, key and value, plus a small overhead.
fn put_bytes(tree: &[u8], key: &[u8], value_len: u64) -> u64 {
    (tree.len() + key.len() + 10) as u64 + value_len
}

impl Live {
    /// Notes one op of a frame appended to segment `seg`; `value_off` is
    /// where its value starts in the segment file (ignored for a removal).
    pub(crate) fn note(&mut self, seg: u64, value_off: u64, op: &ReplayOp<'_>) {
        let tree = match self.trees.get_mut(op.tree) {
            Some(t) => t,
            None => self.trees.entry(op.tree.into()).or_default(),
        };
        let new = op.value.map(|v| Loc {
            seg: seg.min(u64::from(u32::MAX)) as u32,
            off: value_off.min(u64::from(u32::MAX)) as u32,
            len: v.len().min(u32::MAX as usize) as u32,
        });
        let old = match (<[u8; 8]>::try_from(op.key), new) {
            (Ok(k), Some(l)) => tree.short.insert(u64::from_be_bytes(k), l),
            (Ok(k), None) => tree.short.remove(&u64::from_be_bytes(k)),
            (Err(_), Some(l)) => tree.other.insert(op.key.into(), l),
            (Err(_), None) => tree.other.remove(op.key),
        };
        if let Some(old) = old {
            if let Some(live) = self.seg_live.get_mut(&u64::from(old.seg)) {
                *live = live.saturating_sub(put_bytes(op.tree, op.key, u64::from(old.len)));
            }
        }
        if let Some(l) = new {
            let bytes = put_bytes(op.tree, op.key, u64::from(l.len));
            *self.seg_live.entry(seg).or_default() += bytes;
            *self.seg_total.entry(seg).or_default() += bytes;
        }
    }

    /// Notes every op of a frame whose payload starts at `payload_off` in
    /// segment `seg`.
    pub(crate) fn note_frame(
        &mut self,
        seg: u64,
        payload_off: u64,
        payload: &[u8],
    ) -> Result<(), String> {
        let base = payload.as_ptr() as usize;
        for op in decode_ops(payload)? {
            let off = op.value.map_or(0, |v| (v.as_ptr() as usize - base) as u64);
            self.note(seg, payload_off + off, &op);
        }
        Ok(())
    }

    /// Whether the put of `tree`/`key` whose value starts at `value_off`
    /// in segment `seg` is that entry's latest (the one a read returns).
    pub(crate) fn is_latest(&self, seg: u64, value_off: u64, tree: &[u8], key: &[u8]) -> bool {
        self.location(tree, key)
            .is_some_and(|l| u64::from(l.seg) == seg && u64::from(l.off) == value_off)
    }

    /// Whether `tree`/`key` is live (its latest op is a put).
    pub(crate) fn contains(&self, tree: &[u8], key: &[u8]) -> bool {
        self.location(tree, key).is_some()
    }

    /// Where the latest put of `tree`/`key` is, if it is live.
    pub(crate) fn location(&self, tree: &[u8], key: &[u8]) -> Option<Loc> {
        let t = self.trees.get(tree)?;
        match <[u8; 8]>::try_from(key) {
            Ok(k) => t.short.get(&u64::from_be_bytes(k)).copied(),
            Err(_) => t.other.get(key).copied(),
        }
    }

    /// Up to `limit` live keys of `tree` from `from` on (inclusive), in
    /// byte order, with their locations.
    pub(crate) fn keys_from(&self, tree: &[u8], from: &[u8], limit: usize) -> Vec<(Vec<u8>, Loc)> {
        let Some(t) = self.trees.get(tree) else {
            return Vec::new();
        };
        // The first 8-byte key not below `from` in byte order.
        let mut start = [0u8; 8];
        let n = from.len().min(8);
        start[..n].copy_from_slice(&from[..n]);
        let mut out: Vec<(Vec<u8>, Loc)> = t
            .short
            .range(u64::from_be_bytes(start)..)
            .map(|(k, l)| (k.to_be_bytes().to_vec(), *l))
            .filter(|(k, _)| k.as_slice() >= from)
            .take(limit)
            .collect();
        if !t.other.is_empty() {
            out.extend(
                t.other
                    .iter()
                    .filter(|(k, _)| &***k >= from)
                    .map(|(k, l)| (k.to_vec(), *l)),
            );
            out.sort_unstable_by(|a, b| a.0.cmp(&b.0));
            out.truncate(limit);
        }
        out
    }

    /// The last live key of `tree` among its 8-byte keys (the outbox's,
    /// the dead letters' and the pending chunks' keys are all 8 bytes).
    pub(crate) fn last_short_key(&self, tree: &[u8]) -> Option<u64> {
        self.trees
            .get(tree)?
            .short
            .last_key_value()
            .map(|(k, _)| *k)
    }

    /// Names of the trees with at least one live entry.
    pub(crate) fn tree_names(&self) -> Vec<Vec<u8>> {
        let mut names: Vec<Vec<u8>> = self
            .trees
            .iter()
            .filter(|(_, t)| !t.short.is_empty() || !t.other.is_empty())
            .map(|(n, _)| n.to_vec())
            .collect();
        names.sort();
        names
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

    /// Drops every entry and figure of a segment not in `segs` (loaded
    /// from a saved map whose segments were retired since: whatever was
    /// live in them was copied forward into frames scanned after it, so
    /// what still points there is gone). Returns how many entries went.
    pub(crate) fn keep_segments(&mut self, segs: &[u64]) -> u64 {
        let gone = |seg: u64| segs.binary_search(&seg).is_err();
        if !self.seg_total.keys().any(|&s| gone(s)) {
            return 0;
        }
        let mut dropped = 0u64;
        for t in self.trees.values_mut() {
            let before = (t.short.len() + t.other.len()) as u64;
            t.short.retain(|_, l| !gone(u64::from(l.seg)));
            t.other.retain(|_, l| !gone(u64::from(l.seg)));
            dropped += before - (t.short.len() + t.other.len()) as u64;
        }
        self.seg_live.retain(|&s, _| !gone(s));
        self.seg_total.retain(|&s, _| !gone(s));
        dropped
    }

    /// The map as bytes (see `live_file` for the format).
    #[cfg(test)]
    pub(crate) fn encode(&self, out: &mut Vec<u8>) {
        self.encode_to(&mut |b: &[u8]| out.extend_from_slice(b));
    }

    /// The map as bytes, handed to `out` piece by piece (in order), so a
    /// caller can write it out without holding all of it: 20 MiB for
    /// 1,000,000 entries, held on top of everything else at a clean
    /// close when it was built whole.
    pub(crate) fn encode_to(&self, out: &mut impl FnMut(&[u8])) {
        let put_loc = |out: &mut dyn FnMut(&[u8]), l: &Loc| {
            let mut b = [0u8; 12];
            b[..4].copy_from_slice(&l.seg.to_le_bytes());
            b[4..8].copy_from_slice(&l.off.to_le_bytes());
            b[8..].copy_from_slice(&l.len.to_le_bytes());
            out(&b);
        };
        out(&(self.trees.len() as u64).to_le_bytes());
        for (name, t) in &self.trees {
            out(&[name.len().min(255) as u8]);
            out(&name[..name.len().min(255)]);
            out(&(t.short.len() as u64).to_le_bytes());
            for (k, l) in &t.short {
                out(&k.to_le_bytes());
                put_loc(out, l);
            }
            out(&(t.other.len() as u64).to_le_bytes());
            for (k, l) in &t.other {
                out(&(k.len() as u32).to_le_bytes());
                out(k);
                put_loc(out, l);
            }
        }
        out(&(self.seg_total.len() as u64).to_le_bytes());
        for (seg, total) in &self.seg_total {
            out(&seg.to_le_bytes());
            out(&self.seg_live.get(seg).copied().unwrap_or(0).to_le_bytes());
            out(&total.to_le_bytes());
        }
    }

    /// The map from [`Live::encode`]'s bytes; `None` if they do not read.
    pub(crate) fn decode(mut b: &[u8]) -> Option<Live> {
        fn take<'a>(b: &mut &'a [u8], n: usize) -> Option<&'a [u8]> {
            if b.len() < n {
                return None;
            }
            let (head, rest) = b.split_at(n);
            *b = rest;
            Some(head)
        }
        fn u64_of(b: &mut &[u8]) -> Option<u64> {
            Some(u64::from_le_bytes(take(b, 8)?.try_into().ok()?))
        }
        fn u32_of(b: &mut &[u8]) -> Option<u32> {
            Some(u32::from_le_bytes(take(b, 4)?.try_into().ok()?))
        }
        fn loc_of(b: &mut &[u8]) -> Option<Loc> {
            Some(Loc {
                seg: u32_of(b)?,
                off: u32_of(b)?,
                len: u32_of(b)?,
            })
        }
        let mut live = Live::default();
        for _ in 0..u64_of(&mut b)? {
            let n = take(&mut b, 1)?[0] as usize;
            let name: Box<[u8]> = take(&mut b, n)?.into();
            let mut t = TreeLive::default();
            let shorts = u64_of(&mut b)?;
            let mut sorted = Vec::with_capacity((shorts as usize).min(b.len() / 20));
            for _ in 0..shorts {
                sorted.push((u64_of(&mut b)?, loc_of(&mut b)?));
            }
            // Written in key order: a bulk build.
            t.short = sorted.into_iter().collect();
            for _ in 0..u64_of(&mut b)? {
                let n = u32_of(&mut b)? as usize;
                let key: Box<[u8]> = take(&mut b, n)?.into();
                t.other.insert(key, loc_of(&mut b)?);
            }
            live.trees.insert(name, t);
        }
        for _ in 0..u64_of(&mut b)? {
            let seg = u64_of(&mut b)?;
            live.seg_live.insert(seg, u64_of(&mut b)?);
            live.seg_total.insert(seg, u64_of(&mut b)?);
        }
        b.is_empty().then_some(live)
    }

    /// Live entries whose latest put is in segment `seg` (a walk of the
    /// whole map: only before a segment is deleted).
    pub(crate) fn entries_in(&self, seg: u64) -> u64 {
        let seg = seg.min(u64::from(u32::MAX)) as u32;
        self.trees
            .values()
            .map(|t| {
                let short = t.short.values().filter(|l| l.seg == seg).count();
                let other = t.other.values().filter(|l| l.seg == seg).count();
                (short + other) as u64
            })
            .sum()
    }

    /// Rebuilds every tree's 8-byte-key map in bulk. A map filled by a
    /// scan of the whole log gets its keys mostly in ascending order, and
    /// a B-tree filled so keeps its nodes about half full: 39 MiB for
    /// 1,000,000 outbox entries where the same map built in bulk (full
    /// nodes, as `decode` builds it) takes 21 MiB. The rebuild holds one
    /// sorted list of the entries on the side while it runs.
    pub(crate) fn compact(&mut self) {
        for t in self.trees.values_mut() {
            let sorted: Vec<(u64, Loc)> = std::mem::take(&mut t.short).into_iter().collect();
            t.short = BTreeMap::from_iter(sorted);
        }
    }

    /// Live entries in all trees.
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
        live.note(1, 100, &put(b"outbox", &k, &[0; 90]));
        live.note(1, 200, &put(b"state/x", b"call-1", &[0; 40]));
        assert!(live.is_latest(1, 100, b"outbox", &k));
        assert!(!live.is_latest(1, 200, b"outbox", &k));
        assert_eq!(
            live.location(b"outbox", &k),
            Some(Loc {
                seg: 1,
                off: 100,
                len: 90
            })
        );
        assert_eq!(live.segment(1).0, live.segment(1).1);
        // Rewritten in segment 2: segment 1 keeps only the state entry.
        live.note(2, 300, &put(b"outbox", &k, &[1; 90]));
        assert!(!live.is_latest(1, 100, b"outbox", &k) && live.is_latest(2, 300, b"outbox", &k));
        assert_eq!((live.entries_in(1), live.entries_in(2)), (1, 1));
        assert_eq!(live.segment(1).0, (7 + 6 + 40 + 10) as u64);
        // Removed: nowhere live, its bytes leave segment 2.
        live.note(
            3,
            0,
            &ReplayOp {
                tree: b"outbox",
                key: &k,
                value: None,
            },
        );
        assert!(!live.contains(b"outbox", &k));
        assert_eq!(live.segment(2).0, 0);
        assert_eq!(live.entries(), 1);
        // Saved and loaded: the same map.
        let mut bytes = Vec::new();
        live.encode(&mut bytes);
        let back = Live::decode(&bytes).expect("decodes");
        assert_eq!(
            back.location(b"state/x", b"call-1"),
            live.location(b"state/x", b"call-1")
        );
        assert_eq!(
            (back.segment(1), back.segment(2), back.entries()),
            (live.segment(1), live.segment(2), 1)
        );
        assert!(Live::decode(&bytes[..bytes.len() - 1]).is_none());
        // Segment 1 retired: what still pointed there goes.
        let mut back = back;
        assert_eq!(back.keep_segments(&[2, 3]), 1);
        assert_eq!(back.entries(), 0);
    }

    /// Goal: a live map filled frame by frame (a scan of the whole log)
    /// and then compacted costs what a bulk-built one does, about half,
    /// and still answers the same. Method: 100,000 outbox entries noted in
    /// ascending order; the bytes this thread holds, counted by the test
    /// allocator, before and after `compact`.
    #[test]
    fn a_map_filled_in_log_order_is_compacted_to_half() {
        let before = crate::alloc_count::held();
        let mut live = Live::default();
        let value = [0u8; 400];
        for seq in 0..100_000u64 {
            live.note(
                1,
                64 + seq * 450,
                &put(b"outbox", &seq.to_be_bytes(), &value),
            );
        }
        let filled = crate::alloc_count::held() - before;
        live.compact();
        let compacted = crate::alloc_count::held() - before;
        assert!(
            compacted * 10 <= filled * 6,
            "{compacted} bytes after compact, {filled} before"
        );
        assert_eq!(live.entries(), 100_000);
        assert_eq!(
            live.location(b"outbox", &77_777u64.to_be_bytes()),
            Some(Loc {
                seg: 1,
                off: (64 + 77_777 * 450) as u32,
                len: 400
            })
        );
        let keys = live.keys_from(b"outbox", &99_998u64.to_be_bytes(), 10);
        assert_eq!(keys.len(), 2);
    }
}
