//! The delivery index, rebuilt on open from the log (the truth; sled is
//! not marked trusted until this is done, even after a clean close, so a
//! record sled lacks cannot drop out of the index): from the small
//! `pending` tree, or from every record when that tree is missing or does
//! not match. The repairs it makes (interrupted moves,
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

/// Tree names, as the log and the live map spell them.
const TREE_OUTBOX: &[u8] = crate::TREE_OUTBOX.as_bytes();
const TREE_PENDING: &[u8] = crate::TREE_PENDING.as_bytes();
const TREE_DEAD: &[u8] = crate::TREE_DEAD.as_bytes();
const TREE_META: &[u8] = crate::TREE_META.as_bytes();

/// Rebuilds the index from the log (from the small `pending` entries, not
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
    shared.scan(TREE_DEAD, &[], |k, raw| {
        let Some(seq) = key_seq(&k) else {
            warn!(
                key_len = k.len(),
                "Ignoring a dead-letter key of the wrong length."
            );
            return Ok(true);
        };
        bump(seq);
        if shared.contains(TREE_OUTBOX, &k)? {
            both.push(k);
            return Ok(true);
        }
        match decode_dead_letter(seq, &raw).ok().and_then(|d| d.record) {
            Some(record) => dead_keys.push((seq, key_hash(&record.interaction_key))),
            None => dead_unheld += 1,
        }
        Ok(true)
    })?;
    for k in both {
        out.put(TREE_DEAD, &k, None)?;
        out.end_unit()?;
    }
    if let Some(seq) = shared.last_seq(TREE_OUTBOX)? {
        bump(seq);
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
    let stored_next = match shared.get(TREE_META, META_NEXT_SEQ)? {
        Some(v) => match <[u8; 8]>::try_from(v.as_slice()) {
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

/// The first (or last) sequence of a chunk value.
fn chunk_end(chunk_no: u64, raw: &[u8], first: bool) -> Option<u64> {
    let chunk = decode_chunk(raw).ok()?;
    let slot = if first {
        chunk.first_key_value()
    } else {
        chunk.last_key_value()
    };
    Some(chunk_seq(chunk_no, *slot?.0))
}

/// Whether the `pending` tree was completed and still matches the outbox at
/// both ends (a cheap check against a directory an older build wrote to
/// after this one).
fn pending_tree_usable(shared: &Shared) -> Result<bool, StorageError> {
    if shared.get(TREE_META, META_PENDING_READY)?.as_deref() != Some(&[1u8][..]) {
        return Ok(false);
    }
    let outbox_first = shared
        .page(TREE_OUTBOX, &[], 1)?
        .first()
        .and_then(|(k, _)| key_seq(k));
    let outbox_last = shared.last_seq(TREE_OUTBOX)?;
    let pending_first = shared
        .page(TREE_PENDING, &[], 1)?
        .first()
        .and_then(|(k, raw)| chunk_end(key_seq(k)?, raw, true));
    let pending_last = match shared.last_seq(TREE_PENDING)? {
        Some(chunk_no) => shared
            .get(TREE_PENDING, &chunk_no.to_be_bytes())?
            .and_then(|raw| chunk_end(chunk_no, &raw, false)),
        None => None,
    };
    let usable = outbox_first == pending_first && outbox_last == pending_last;
    if !usable {
        warn!("The pending index does not match the outbox; rebuilding it.");
    }
    Ok(usable)
}

/// Fills the index from the pending tree. Returns `false` (index partly
/// filled) when a chunk is undecodable: the caller rebuilds from records.
fn load_pending(shared: &Shared, index: &mut index::Index) -> Result<bool, StorageError> {
    let mut whole = true;
    shared.scan(TREE_PENDING, &[], |k, raw| {
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
                Ok(true)
            }
            Err(()) => {
                whole = false;
                Ok(false)
            }
        }
    })?;
    if whole {
        index.finish_load();
    }
    Ok(whole)
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
    if shared.get(TREE_META, META_PENDING_READY)?.is_some() {
        out.put(TREE_META, META_PENDING_READY, None)?;
    }
    let mut stale: Vec<Vec<u8>> = Vec::new();
    shared.scan(TREE_PENDING, &[], |k, _| {
        stale.push(k);
        Ok(true)
    })?;
    for k in stale {
        out.put(TREE_PENDING, &k, None)?;
        out.end_unit()?;
    }
    let mut chunk: Option<(u64, Chunk)> = None;
    let put = |out: &mut OpenLog<'_>, (chunk_no, c): (u64, Chunk)| {
        out.put(
            TREE_PENDING,
            &chunk_no.to_be_bytes(),
            Some(&encode_chunk(&c)),
        )?;
        out.end_unit()
    };
    let mut corrupt = Vec::new();
    let mut result = Ok(());
    shared.scan(TREE_OUTBOX, &[], |k, raw| {
        let Some(seq) = key_seq(&k) else {
            warn!(
                key_len = k.len(),
                "Ignoring an outbox key of the wrong length."
            );
            return Ok(true);
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
                        if let Err(e) = put(out, full) {
                            result = Err(e);
                            return Ok(false);
                        }
                    }
                }
                chunk
                    .get_or_insert_with(|| (chunk_of(seq), Chunk::new()))
                    .1
                    .insert(chunk_slot(seq), entry);
            }
            Err(e) => corrupt.push((seq, raw, e)),
        }
        Ok(true)
    })?;
    result?;
    if let Some(c) = chunk.take() {
        put(out, c)?;
    }
    index.finish_load();
    for (seq, raw, e) in corrupt {
        warn!(seq, error = %e, "Corrupt record moved to the dead letters.");
        let reason = format!("corrupt: {e}");
        out.put(
            TREE_DEAD,
            &seq_key(seq),
            Some(&encode_dead_letter(seq, &reason, &raw)?),
        )?;
        out.put(TREE_OUTBOX, &seq_key(seq), None)?;
        out.end_unit()?;
        index.add_dead_unheld();
    }
    out.put(TREE_META, META_PENDING_READY, Some(&[1u8]))?;
    out.flush()
}
