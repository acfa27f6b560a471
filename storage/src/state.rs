//! Persisted state: small named key-value trees beside the outbox (in the
//! log, indexed in sled),
//! written through the same group-commit writer (so `put` and `remove` are
//! durable when they return) and read directly from sled.
//!
//! Used for ServiceNow sys_id mappings and agent/queue state. Keys and
//! values are opaque bytes; callers bring their own encoding.

use std::sync::Arc;

use tokio::sync::oneshot;

use crate::error::StorageError;
use crate::writer::Op;
use crate::Inner;

/// Longest state tree name, in bytes.
pub const STATE_NAME_BYTES_MAX: usize = 64;

/// Prefix of state tree names in sled, keeping them apart from the outbox.
const STATE_TREE_PREFIX: &str = "state/";

/// A named persisted key-value tree. `Clone + Send + Sync`.
#[derive(Clone)]
pub struct StateTree {
    /// The storage (writer channel) this tree writes through.
    inner: Arc<Inner>,
    /// The sled tree, read directly.
    tree: sled::Tree,
}

impl std::fmt::Debug for StateTree {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StateTree")
            .field("name", &String::from_utf8_lossy(&self.tree.name()))
            .finish()
    }
}

impl StateTree {
    pub(crate) fn open(inner: Arc<Inner>, name: &str) -> Result<StateTree, StorageError> {
        if name.is_empty() || name.len() > STATE_NAME_BYTES_MAX {
            return Err(StorageError::InvalidName {
                name: name.to_owned(),
            });
        }
        let tree = inner
            .shared
            .db
            .open_tree(format!("{STATE_TREE_PREFIX}{name}"))?;
        Ok(StateTree { inner, tree })
    }

    /// Stores `value` under `key`; durable when it returns `Ok`.
    pub async fn put(&self, key: &[u8], value: &[u8]) -> Result<(), StorageError> {
        let (tx, rx) = oneshot::channel();
        let op = Op::StatePut {
            tree: self.tree.clone(),
            key: key.to_vec(),
            value: value.to_vec(),
            reply: tx,
        };
        self.inner.send(op).await?;
        rx.await.map_err(|_| StorageError::Closed)?
    }

    /// Removes `key`; durable when it returns `Ok`.
    pub async fn remove(&self, key: &[u8]) -> Result<(), StorageError> {
        let (tx, rx) = oneshot::channel();
        let op = Op::StateRemove {
            tree: self.tree.clone(),
            key: key.to_vec(),
            reply: tx,
        };
        self.inner.send(op).await?;
        rx.await.map_err(|_| StorageError::Closed)?
    }

    /// The value under `key`.
    pub fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StorageError> {
        Ok(self.tree.get(key)?.map(|v| v.to_vec()))
    }

    /// Every entry, in key order.
    pub fn iter(&self) -> impl Iterator<Item = Result<(Vec<u8>, Vec<u8>), StorageError>> + '_ {
        self.tree.iter().map(|item| {
            item.map(|(k, v)| (k.to_vec(), v.to_vec()))
                .map_err(StorageError::from)
        })
    }
}
