//! The actors' outbox port, backed by the durable sled outbox.
//!
//! The actors hand over [`CrmRecord`]s; this adapter encodes each body as
//! JSON, appends the whole group as one durable batch (group commit), and
//! nudges the sync worker so the records leave for the CRM at once.

use actix::Recipient;
use edgecc_actors::ports::{CrmRecord, CrmRecordKind, LocalBoxFuture, OutboxError, OutboxPort};
use edgecc_storage::{AppendFailure, NewRecord, Outbox, RecordKind, BATCH_RECORDS_MAX};

use crate::crm::sync::Kick;

/// [`OutboxPort`] over [`Outbox`].
pub struct StorageOutboxPort {
    /// The durable outbox.
    outbox: Outbox,
    /// Told after each durable append, so delivery starts without waiting
    /// for the next poll; `None` when no CRM is configured.
    sync: Option<Recipient<Kick>>,
}

impl StorageOutboxPort {
    /// A port appending to `outbox` and kicking `sync` after each append.
    pub fn new(outbox: Outbox, sync: Option<Recipient<Kick>>) -> Self {
        StorageOutboxPort { outbox, sync }
    }
}

/// The storage kind of a domain record kind. The two crates may not depend
/// on each other, so each has its kind enum; this is the one place they
/// meet, and its test checks that every kind keeps its wire name both ways.
pub fn record_kind(kind: CrmRecordKind) -> RecordKind {
    match kind {
        CrmRecordKind::InteractionCreate => RecordKind::InteractionCreate,
        CrmRecordKind::InteractionUpdate => RecordKind::InteractionUpdate,
        CrmRecordKind::PhoneLogCreate => RecordKind::PhoneLogCreate,
        CrmRecordKind::WorkItemCreate => RecordKind::WorkItemCreate,
    }
}

impl OutboxPort for StorageOutboxPort {
    fn append(&self, records: Vec<CrmRecord>) -> LocalBoxFuture<'static, Result<(), OutboxError>> {
        let outbox = self.outbox.clone();
        let sync = self.sync.clone();
        let records: Vec<NewRecord> = records
            .into_iter()
            .map(|r| NewRecord {
                body: serde_json::to_vec(&r.body).unwrap_or_else(|_| b"null".to_vec()),
                correlation_id: r.correlation_id,
                interaction_key: r.interaction_key,
                kind: record_kind(r.kind),
                created_at_ms: r.at_ms,
            })
            .collect();
        Box::pin(async move {
            // The actors' writer batches freely; storage takes at most
            // BATCH_RECORDS_MAX per atomic batch. Chunks go in order, and the
            // actors retry the whole group on failure (the correlation ids
            // make a chunk that did land harmless at the CRM).
            let mut records = records;
            while !records.is_empty() {
                let rest = records.split_off(records.len().min(BATCH_RECORDS_MAX));
                if let Err(e) = outbox.append_batch(records).await {
                    return Err(match e.failure {
                        AppendFailure::Storage(s) => OutboxError::Unavailable(s.to_string()),
                        other => OutboxError::Rejected(other.to_string()),
                    });
                }
                records = rest;
            }
            if let Some(sync) = sync {
                sync.do_send(Kick);
            }
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every storage kind, listed through an exhaustive match: a kind added to
    /// storage fails to compile here until it is mapped.
    fn storage_kinds() -> Vec<RecordKind> {
        let all = [
            RecordKind::InteractionCreate,
            RecordKind::InteractionUpdate,
            RecordKind::PhoneLogCreate,
            RecordKind::WorkItemCreate,
        ];
        for kind in all {
            match kind {
                RecordKind::InteractionCreate
                | RecordKind::InteractionUpdate
                | RecordKind::PhoneLogCreate
                | RecordKind::WorkItemCreate => {}
            }
        }
        all.to_vec()
    }

    /// Every domain kind maps to the storage kind of the same wire name (and
    /// the same serde name), and every storage kind is reached by exactly one
    /// domain kind and reads back to it by its wire name.
    #[test]
    fn record_kinds_round_trip_by_wire_name() {
        for kind in CrmRecordKind::ALL {
            let stored = record_kind(kind);
            assert_eq!(stored.as_str(), kind.as_str());
            assert_eq!(
                serde_json::to_value(stored).expect("kind serializes"),
                serde_json::to_value(kind).expect("kind serializes")
            );
            assert_eq!(CrmRecordKind::parse(stored.as_str()), Some(kind));
        }
        for stored in storage_kinds() {
            let domain: Vec<CrmRecordKind> = CrmRecordKind::ALL
                .into_iter()
                .filter(|k| record_kind(*k) == stored)
                .collect();
            assert_eq!(domain.len(), 1, "{stored:?} is reached by {domain:?}");
        }
    }
}
