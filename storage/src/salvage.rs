//! Salvage: every readable record of a quarantined sled directory (or of
//! any directory holding sled's files) appended to the live outbox, without
//! duplicates.
//!
//! Identity: a record is the same as one the live outbox holds (pending or
//! dead) when its correlation id and kind are equal. The correlation id is
//! the idempotency key the CRM sees, so this is exactly the identity the
//! CRM deduplicates by; sequences are not used because a rebuilt directory
//! hands out sequences of its own, and a quarantined one's may name other
//! records. Salvaged records are appended as new pending records (new
//! sequences, in their old order, so a key's records stay in order). A
//! record the live outbox delivered since (acked, so gone) cannot be told
//! apart from a lost one: it is sent again, and the CRM's idempotency key
//! absorbs it.
//!
//! Reading: sled is opened (its panics caught); if it does not open, its
//! `db` file and blobs are scanned for record values directly (a record
//! value carries its own schema byte and CRC32, so only intact records
//! are taken). Known limit: a sled log damaged at its start was seen to
//! open and show no records at all; the raw scan would find them, but it
//! also finds old versions of records delivered long ago, so it is not
//! run when sled opens.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use tracing::{info, warn};

use crate::error::StorageError;
use crate::record::{decode_dead_letter, decode_record, scan_records, NewRecord, Record};
use crate::sled_files::guarded;
use crate::{Storage, BATCH_RECORDS_MAX};

/// What a salvage found and did.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct SalvageSummary {
    /// The directory read.
    pub dir: PathBuf,
    /// Whether sled opened it (`false`: its files were scanned raw).
    pub opened: bool,
    /// Intact records found (pending and dead letters).
    pub found: u64,
    /// Records already in the live outbox (pending or dead): skipped.
    pub duplicates: u64,
    /// Records appended to the live outbox.
    pub appended: u64,
    /// Entries that did not decode (damaged): skipped.
    pub unreadable: u64,
}

/// Reads every record of the sled files in `dir` and appends those the
/// live outbox of `storage` does not hold (see the module header). Refuses
/// the live directory itself.
pub async fn salvage(dir: &Path, storage: &Storage) -> Result<SalvageSummary, StorageError> {
    let live_dir = storage.dir();
    if dir.canonicalize().ok() == live_dir.canonicalize().ok() {
        return Err(StorageError::Commit {
            message: format!(
                "{} is the live storage directory; salvage reads a quarantined one",
                dir.display()
            ),
        });
    }
    let mut summary = SalvageSummary {
        dir: dir.to_path_buf(),
        ..SalvageSummary::default()
    };
    let found = match guarded("salvage open", || read_with_sled(dir, &mut summary)) {
        Ok(records) => {
            summary.opened = true;
            records
        }
        Err(e) => {
            warn!(dir = %dir.display(), error = %e, "sled cannot read the directory; scanning its files.");
            read_raw(dir)?
        }
    };
    summary.found = found.len() as u64;
    // The live outbox's identities.
    let outbox = storage.outbox();
    let mut known: HashSet<(String, u32)> = HashSet::new();
    let mut from = 0;
    loop {
        let page = outbox.list(from, crate::outbox::LIST_MAX)?;
        let Some(last) = page.last() else { break };
        from = last.seq + 1;
        known.extend(page.into_iter().map(|r| (r.correlation_id, r.kind as u32)));
    }
    let mut from = 0;
    loop {
        let page = outbox.dead_letters(from, crate::outbox::LIST_MAX)?;
        let Some(last) = page.last() else { break };
        from = last.seq + 1;
        known.extend(
            page.into_iter()
                .filter_map(|d| d.record)
                .map(|r| (r.correlation_id, r.kind as u32)),
        );
    }
    let mut batch = Vec::new();
    for record in found {
        if !known.insert((record.correlation_id.clone(), record.kind as u32)) {
            summary.duplicates += 1;
            continue;
        }
        batch.push(NewRecord {
            correlation_id: record.correlation_id,
            interaction_key: record.interaction_key,
            kind: record.kind,
            body: record.body,
            created_at_ms: record.created_at_ms,
        });
        if batch.len() == BATCH_RECORDS_MAX {
            summary.appended += append(storage, std::mem::take(&mut batch)).await?;
        }
    }
    summary.appended += append(storage, batch).await?;
    info!(
        dir = %dir.display(),
        found = summary.found,
        appended = summary.appended,
        duplicates = summary.duplicates,
        unreadable = summary.unreadable,
        "Salvage done."
    );
    Ok(summary)
}

async fn append(storage: &Storage, batch: Vec<NewRecord>) -> Result<u64, StorageError> {
    if batch.is_empty() {
        return Ok(0);
    }
    let n = batch.len() as u64;
    storage
        .outbox()
        .append_batch(batch)
        .await
        .map_err(|e| match e.failure {
            crate::AppendFailure::Storage(s) => s,
            other => StorageError::Commit {
                message: other.to_string(),
            },
        })?;
    Ok(n)
}

/// Pending records then dead letters' records, by sequence, through sled.
fn read_with_sled(dir: &Path, summary: &mut SalvageSummary) -> Result<Vec<Record>, StorageError> {
    let db = sled::Config::new().path(dir).open()?;
    let mut out = Vec::new();
    for item in db.open_tree("outbox")?.iter() {
        let (k, v) = item?;
        match crate::record::key_seq(&k).map(|seq| decode_record(seq, &v)) {
            Some(Ok(r)) => out.push(r),
            _ => summary.unreadable += 1,
        }
    }
    for item in db.open_tree("dead")?.iter() {
        let (k, v) = item?;
        match crate::record::key_seq(&k)
            .and_then(|seq| decode_dead_letter(seq, &v).ok())
            .and_then(|d| d.record)
        {
            Some(r) => out.push(r),
            None => summary.unreadable += 1,
        }
    }
    out.sort_by_key(|r| r.seq);
    Ok(out)
}

/// Records found by scanning sled's `db` file and blobs byte by byte; the
/// newest version of a sequence wins (the highest attempts count).
fn read_raw(dir: &Path) -> Result<Vec<Record>, StorageError> {
    let mut files = vec![dir.join("db")];
    if let Ok(blobs) = std::fs::read_dir(dir.join("blobs")) {
        files.extend(blobs.flatten().map(|e| e.path()));
    }
    let mut by_seq = std::collections::BTreeMap::new();
    for file in files {
        let bytes = match std::fs::read(&file) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(StorageError::io(format!("read {}", file.display()), e)),
        };
        for r in scan_records(&bytes) {
            let newer = by_seq
                .get(&r.seq)
                .is_none_or(|old: &Record| r.attempts >= old.attempts);
            if newer {
                by_seq.insert(r.seq, r);
            }
        }
    }
    Ok(by_seq.into_values().collect())
}
