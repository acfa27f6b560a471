//! Persisted state: small named key-value trees beside the outbox (in the
//! log, indexed in sled), written through the same group-commit writer (so
//! `put` and `remove` are durable when they return) and read through the
//! `read` module (sled once trusted, the log until then).
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

/// Entries read at once by [`StateTree::iter`].
const STATE_PAGE: usize = 256;

/// Prefix of state tree names in sled, keeping them apart from the outbox.
const STATE_TREE_PREFIX: &str = "state/";

/// A named persisted key-value tree. `Clone + Send + Sync`.
#[derive(Clone)]
pub struct StateTree {
    /// The storage (writer channel) this tree writes through.
    inner: Arc<Inner>,
    /// The tree's name in the log and in sled (`state/<name>`).
    tree: Vec<u8>,
}

impl std::fmt::Debug for StateTree {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StateTree")
            .field("name", &String::from_utf8_lossy(&self.tree))
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
        let tree = format!("{STATE_TREE_PREFIX}{name}").into_bytes();
        Ok(StateTree { inner, tree })
    }

    /// Stores `value` under `key`; durable when it returns `Ok`.
    pub async fn put(&self, key: &[u8], value: &[u8]) -> Result<(), StorageError> {
        self.apply(vec![(key.to_vec(), Some(value.to_vec()))]).await
    }

    /// Removes `key`; durable when it returns `Ok`.
    pub async fn remove(&self, key: &[u8]) -> Result<(), StorageError> {
        self.apply(vec![(key.to_vec(), None)]).await
    }

    /// Puts (`Some`) and removes (`None`) values, in order, atomically:
    /// they go into one group commit, one CRC-framed log frame, so after a
    /// power cut either every write of the batch is there or none is.
    /// Durable when it returns `Ok`.
    pub async fn apply(&self, writes: Vec<(Vec<u8>, Option<Vec<u8>>)>) -> Result<(), StorageError> {
        if writes.is_empty() {
            return Ok(());
        }
        let (tx, rx) = oneshot::channel();
        let op = Op::State {
            tree: self.tree.clone(),
            writes,
            reply: tx,
        };
        self.inner.send(op).await?;
        rx.await.map_err(|_| StorageError::Closed)?
    }

    /// The value under `key`.
    pub fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StorageError> {
        self.inner.shared.get(&self.tree, key)
    }

    /// Every entry, in key order (read a page at a time).
    pub fn iter(&self) -> impl Iterator<Item = Result<(Vec<u8>, Vec<u8>), StorageError>> + '_ {
        self.iter_from(&[])
    }

    /// Every entry whose key is `start` or after, in key order (read a
    /// page at a time): a range read stops when the caller stops.
    pub fn iter_from(
        &self,
        start: &[u8],
    ) -> impl Iterator<Item = Result<(Vec<u8>, Vec<u8>), StorageError>> + '_ {
        let mut from = Some(start.to_vec());
        let mut page = std::collections::VecDeque::new();
        std::iter::from_fn(move || {
            if page.is_empty() {
                let start = from.take()?;
                match self.inner.shared.page(&self.tree, &start, STATE_PAGE) {
                    Ok(entries) => {
                        if entries.len() == STATE_PAGE {
                            from = entries
                                .last()
                                .map(|(k, _)| crate::read::successor(k.clone()));
                        }
                        page.extend(entries);
                    }
                    Err(e) => return Some(Err(e)),
                }
            }
            page.pop_front().map(Ok)
        })
    }
}
