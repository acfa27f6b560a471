//! The delivery index, rebuilt on open from sled once sled matches the log:
//! from the small `pending` tree, or from every record when that tree is
//! missing or does not match. The repairs it makes (interrupted moves,
//! a rebuilt `pending` tree, corrupt records moved to the dead letters)
//! go through the log like every other write.

use tracing::warn;

use crate::error::StorageError;
use crate::index::{self, key_hash};
use crate::rebuild::OpenLog;
use crate::record::{
    chunk_of, chunk_seq, chunk_slot, decode_chunk, decode_dead_letter, decode_record, encode_chunk,
    encode_dead_letter, key_seq, seq_key, Chunk, PendingEntry,
};
use crate::writer::META_NEXT_SEQ;
use crate::{Shared, META_PENDING_READY};

/// Rebuilds the index from sled (from the small `pending` entries, not
/// the records), finishes interrupted moves, and rebuilds the `pending`
/// tree from the records when it is missing or does not match the outbox.
/// Returns the next sequence to hand out.
pub(crate) fn recover(shared: &Shared, out: &mut OpenLog<'_>) -> Result<u64, StorageError> {
    let mut index = shared.lock_index();
    let mut max_seq: Option<u64> = None;
    let mut bump = |seq: u64| max_seq = Some(max_seq.map_or(seq, |m: u64| m.max(seq)));

    // Dead letters. A sequence in both trees is an interrupted move
    // (dead-letter or re-queue) of a version that did not commit a group
    // atomically: the outbox copy wins, nothing is lost.
    let mut dead_keys = Vec::new();
    let mut dead_unheld = 0u64;
    let mut both = Vec::new();
    for item in shared.dead.iter() {
        let (k, raw) = item?;
        let Some(seq) = key_seq(&k) else {
            warn!(
                key_len = k.len(),
                "Ignoring a dead-letter key of the wrong length."
            );
            continue;
        };
        bump(seq);
        if shared.outbox.contains_key(&k)? {
            both.push(k);
            continue;
        }
        match decode_dead_letter(seq, &raw).ok().and_then(|d| d.record) {
            Some(record) => dead_keys.push((seq, key_hash(&record.interaction_key))),
            None => dead_unheld += 1,
        }
    }
    for k in both {
        out.put(&shared.dead, &k, None)?;
        out.end_unit()?;
    }
    if let Some((k, _)) = shared.outbox.last()? {
        if let Some(seq) = key_seq(&k) {
            bump(seq);
        }
    }
    // Pending records: from the pending tree when it is usable, else from
    // the records themselves (and the tree is rebuilt).
    let mut loaded = false;
    if pending_tree_usable(shared)? {
        loaded = load_pending(shared, &mut index)?;
        if !loaded {
            *index = index::Index::default();
        }
    }
    if !loaded {
        rebuild_pending(shared, &mut index, out)?;
    }
    for (seq, key) in dead_keys {
        index.add_dead(seq, key);
    }
    for _ in 0..dead_unheld {
        index.add_dead_unheld();
    }
    let stored_next = match shared.meta.get(META_NEXT_SEQ)? {
        Some(v) => match <[u8; 8]>::try_from(v.as_ref()) {
            Ok(b) => u64::from_be_bytes(b),
            Err(_) => {
                warn!(len = v.len(), "Ignoring a malformed next-sequence value.");
                0
            }
        },
        None => 0,
    };
    // Sequences start at 1 so 0 can never name a record.
    Ok(stored_next.max(max_seq.map_or(1, |m| m + 1)).max(1))
}

/// Whether the `pending` tree was completed and still matches the outbox at
/// both ends (a cheap check against a directory an older build wrote to
/// after this one).
fn pending_tree_usable(shared: &Shared) -> Result<bool, StorageError> {
    if shared.meta.get(META_PENDING_READY)?.as_deref() != Some(&[1u8][..]) {
        return Ok(false);
    }
    let outbox_end = |item: Option<(sled::IVec, sled::IVec)>| item.and_then(|(k, _)| key_seq(&k));
    let chunk_end = |item: Option<(sled::IVec, sled::IVec)>, first: bool| {
        let (k, raw) = item?;
        let chunk = decode_chunk(&raw).ok()?;
        let slot = if first {
            chunk.first_key_value()
        } else {
            chunk.last_key_value()
        };
        Some(chunk_seq(key_seq(&k)?, *slot?.0))
    };
    let usable = outbox_end(shared.outbox.first()?) == chunk_end(shared.pending.first()?, true)
        && outbox_end(shared.outbox.last()?) == chunk_end(shared.pending.last()?, false);
    if !usable {
        warn!("The pending index does not match the outbox; rebuilding it.");
    }
    Ok(usable)
}

/// Fills the index from the pending tree. Returns `false` (index partly
/// filled) when a chunk is undecodable: the caller rebuilds from records.
fn load_pending(shared: &Shared, index: &mut index::Index) -> Result<bool, StorageError> {
    for item in shared.pending.iter() {
        let (k, raw) = item?;
        let chunk = key_seq(&k).ok_or(()).and_then(|chunk_no| {
            decode_chunk(&raw)
                .map(|c| (chunk_no, c))
                .map_err(|e| warn!(chunk_no, error = %e, "Undecodable pending chunk; rebuilding."))
        });
        match chunk {
            Ok((chunk_no, chunk)) => {
                for (slot, e) in chunk {
                    index.load(chunk_seq(chunk_no, slot), e.key, e.not_before_ms);
                }
            }
            Err(()) => return Ok(false),
        }
    }
    index.finish_load();
    Ok(true)
}

/// Rebuilds the pending tree and the index from the records (first open of
/// an older directory, or a damaged pending tree), moving undecodable
/// records to the dead letters. `pending_ready` is set in the last frame,
/// after every chunk.
fn rebuild_pending(
    shared: &Shared,
    index: &mut index::Index,
    out: &mut OpenLog<'_>,
) -> Result<(), StorageError> {
    if shared.meta.get(META_PENDING_READY)?.is_some() {
        out.put(&shared.meta, META_PENDING_READY, None)?;
    }
    let stale: Vec<sled::IVec> = shared.pending.iter().keys().collect::<Result<_, _>>()?;
    for k in stale {
        out.put(&shared.pending, &k, None)?;
        out.end_unit()?;
    }
    let mut chunk: Option<(u64, Chunk)> = None;
    let put = |out: &mut OpenLog<'_>, (chunk_no, c): (u64, Chunk)| {
        out.put(
            &shared.pending,
            &chunk_no.to_be_bytes(),
            Some(&encode_chunk(&c)),
        )?;
        out.end_unit()
    };
    let mut corrupt = Vec::new();
    for item in shared.outbox.iter() {
        let (k, raw) = item?;
        let Some(seq) = key_seq(&k) else {
            warn!(
                key_len = k.len(),
                "Ignoring an outbox key of the wrong length."
            );
            continue;
        };
        match decode_record(seq, &raw) {
            Ok(record) => {
                let entry = PendingEntry {
                    key: key_hash(&record.interaction_key),
                    not_before_ms: record.next_attempt_at_ms,
                };
                index.load(seq, entry.key, entry.not_before_ms);
                if chunk.as_ref().is_some_and(|(n, _)| *n != chunk_of(seq)) {
                    if let Some(full) = chunk.take() {
                        put(out, full)?;
                    }
                }
                chunk
                    .get_or_insert_with(|| (chunk_of(seq), Chunk::new()))
                    .1
                    .insert(chunk_slot(seq), entry);
            }
            Err(e) => corrupt.push((seq, raw, e)),
        }
    }
    if let Some(c) = chunk.take() {
        put(out, c)?;
    }
    index.finish_load();
    for (seq, raw, e) in corrupt {
        warn!(seq, error = %e, "Corrupt record moved to the dead letters.");
        let reason = format!("corrupt: {e}");
        out.put(
            &shared.dead,
            &seq_key(seq),
            Some(&encode_dead_letter(seq, &reason, &raw)?),
        )?;
        out.put(&shared.outbox, &seq_key(seq), None)?;
        out.end_unit()?;
        index.add_dead_unheld();
    }
    out.put(&shared.meta, META_PENDING_READY, Some(&[1u8]))?;
    out.flush()
}
