//! The actors' outbox port, backed by the durable sled outbox.
//!
//! The actors hand over [`CrmRecord`]s; this adapter encodes each body as
//! JSON, appends the whole group as one durable batch (group commit), and
//! nudges the sync worker so the records leave for the CRM at once. It keeps
//! the records until the append resolves and hands them back on an error,
//! for the writer's retry.

use actix::Recipient;
use edgecc_actors::ports::{CrmRecord, LocalBoxFuture, OutboxAppend, OutboxError, OutboxPort};
use edgecc_storage::{AppendFailure, NewRecord, Outbox, BATCH_RECORDS_MAX};

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

impl OutboxPort for StorageOutboxPort {
    fn append(&self, records: Vec<CrmRecord>) -> LocalBoxFuture<'static, OutboxAppend> {
        let outbox = self.outbox.clone();
        let sync = self.sync.clone();
        // Encoded from the records, which this port keeps until the append
        // resolves: handed back on an error for the writer's retry.
        let encoded: Vec<NewRecord> = records.iter().map(encode).collect();
        Box::pin(async move {
            // The actors' writer batches freely; storage takes at most
            // BATCH_RECORDS_MAX per atomic batch. Chunks go in order, and the
            // actors retry the whole group on failure (the correlation ids
            // make a chunk that did land harmless at the CRM).
            let mut encoded = encoded;
            while !encoded.is_empty() {
                let rest = encoded.split_off(encoded.len().min(BATCH_RECORDS_MAX));
                if let Err(e) = outbox.append_batch(encoded).await {
                    let e = match e.failure {
                        AppendFailure::Storage(s) => OutboxError::Unavailable(s.to_string()),
                        other => OutboxError::Rejected(other.to_string()),
                    };
                    return Err((e, records));
                }
                encoded = rest;
            }
            if let Some(sync) = sync {
                sync.do_send(Kick);
            }
            Ok(())
        })
    }
}

/// The storage form of a record: the body as JSON bytes.
fn encode(r: &CrmRecord) -> NewRecord {
    NewRecord {
        body: serde_json::to_vec(&r.body).unwrap_or_else(|_| b"null".to_vec()),
        correlation_id: r.correlation_id.clone(),
        interaction_key: r.interaction_key.clone(),
        kind: r.kind,
        created_at_ms: r.at_ms,
    }
}
