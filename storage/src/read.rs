//! Every read of a tree: from sled once it is trusted (after a clean
//! close, or once the background check has made it match the log), from
//! the log until then. The live map is exact at all times (the writer
//! notes each frame there before answering anyone), so until sled is
//! trusted it answers which keys exist, and a value is read back from the
//! segment file at the location the map gives. A trusted sled that
//! panics while read is distrusted and the read answered from the log.

use std::io::ErrorKind;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::Ordering;

use crate::error::StorageError;
use crate::live::Loc;
use crate::Shared;

/// How often a read from the log asks the live map again after finding
/// the segment it named retired in between.
const RETIRED_RETRIES: usize = 16;

/// One entry of a tree: key and value.
pub(crate) type Entry = (Vec<u8>, Vec<u8>);

impl Shared {
    /// `read` of a trusted sled: `None` when sled is not trusted, or when
    /// it panicked (it is then distrusted, see [`Shared::distrust_sled`],
    /// and the caller reads the log instead).
    fn from_sled<T>(
        &self,
        what: &str,
        read: impl FnOnce() -> Result<T, StorageError>,
    ) -> Option<Result<T, StorageError>> {
        if !self.is_checked() {
            return None;
        }
        let injected = self.panic_next_sled_read.swap(false, Ordering::AcqRel);
        match catch_unwind(AssertUnwindSafe(|| {
            assert!(!injected, "injected: sled panicked while read");
            read()
        })) {
            Ok(result) => Some(result),
            Err(panic) => {
                self.distrust_sled(format!(
                    "sled panicked during {what}: {}",
                    crate::sled_files::panic_message(&*panic)
                ));
                None
            }
        }
    }

    /// The value of `tree`/`key`.
    pub(crate) fn get(&self, tree: &[u8], key: &[u8]) -> Result<Option<Vec<u8>>, StorageError> {
        let sled = self.from_sled("a read", || {
            Ok(self.sled()?.tree(tree)?.get(key)?.map(|v| v.to_vec()))
        });
        match sled {
            Some(result) => result,
            None => self.get_from_log(tree, key),
        }
    }

    /// The value of `tree`/`key` as the log holds it.
    pub(crate) fn get_from_log(
        &self,
        tree: &[u8],
        key: &[u8],
    ) -> Result<Option<Vec<u8>>, StorageError> {
        let mut loc = self.lock_live().location(tree, key);
        for _ in 0..RETIRED_RETRIES {
            let Some(l) = loc else { return Ok(None) };
            match self.read_loc(l) {
                Ok(value) => return Ok(Some(value)),
                Err(e) if e.kind() == ErrorKind::NotFound => {
                    loc = self.lock_live().location(tree, key);
                }
                Err(e) => return Err(log_read_error(l, e)),
            }
        }
        Err(StorageError::Commit {
            message: "a value kept moving while read from the log".into(),
        })
    }

    /// The bytes at a location of the log.
    pub(crate) fn read_loc(&self, l: Loc) -> std::io::Result<Vec<u8>> {
        self.reader
            .read(u64::from(l.seg), u64::from(l.off), l.len as usize)
    }

    /// Whether `tree`/`key` exists.
    pub(crate) fn contains(&self, tree: &[u8], key: &[u8]) -> Result<bool, StorageError> {
        let sled = self.from_sled("a read", || {
            Ok(self.sled()?.tree(tree)?.contains_key(key)?)
        });
        match sled {
            Some(result) => result,
            None => Ok(self.lock_live().contains(tree, key)),
        }
    }

    /// The highest 8-byte key of `tree` (the last sequence or chunk).
    pub(crate) fn last_seq(&self, tree: &[u8]) -> Result<Option<u64>, StorageError> {
        let sled = self.from_sled("a read", || {
            let last = self.sled()?.tree(tree)?.last()?;
            Ok(last
                .and_then(|(k, _)| <[u8; 8]>::try_from(k.as_ref()).ok())
                .map(u64::from_be_bytes))
        });
        match sled {
            Some(result) => result,
            None => Ok(self.lock_live().last_short_key(tree)),
        }
    }

    /// Up to `limit` entries of `tree` from key `from` on (inclusive), in
    /// key order.
    pub(crate) fn page(
        &self,
        tree: &[u8],
        from: &[u8],
        limit: usize,
    ) -> Result<Vec<Entry>, StorageError> {
        let sled = self.from_sled("a read", || {
            let tree = self.sled()?.tree(tree)?;
            let mut out = Vec::with_capacity(limit.min(1024));
            for item in tree.range(from..).take(limit) {
                let (k, v) = item?;
                out.push((k.to_vec(), v.to_vec()));
            }
            Ok(out)
        });
        if let Some(result) = sled {
            return result;
        }
        let keys = self.lock_live().keys_from(tree, from, limit);
        let mut out = Vec::with_capacity(keys.len());
        for (key, l) in keys {
            let value = match self.read_loc(l) {
                Ok(v) => Some(v),
                Err(e) if e.kind() == ErrorKind::NotFound => self.get_from_log(tree, &key)?,
                Err(e) => return Err(log_read_error(l, e)),
            };
            if let Some(value) = value {
                out.push((key, value));
            }
        }
        Ok(out)
    }

    /// Every entry of `tree` from `from` on, page by page, passed to
    /// `visit` until it returns `false`.
    pub(crate) fn scan(
        &self,
        tree: &[u8],
        from: &[u8],
        mut visit: impl FnMut(Vec<u8>, Vec<u8>) -> Result<bool, StorageError>,
    ) -> Result<(), StorageError> {
        const PAGE: usize = 512;
        let mut from = from.to_vec();
        loop {
            let page = self.page(tree, &from, PAGE)?;
            let full = page.len() == PAGE;
            let Some(last) = page.last().map(|(k, _)| k.clone()) else {
                return Ok(());
            };
            for (k, v) in page {
                if !visit(k, v)? {
                    return Ok(());
                }
            }
            if !full {
                return Ok(());
            }
            from = successor(last);
        }
    }
}

/// The smallest key after `key` in byte order.
pub(crate) fn successor(mut key: Vec<u8>) -> Vec<u8> {
    key.push(0);
    key
}

fn log_read_error(l: Loc, e: std::io::Error) -> StorageError {
    StorageError::io(
        format!("read {} bytes at {} of log segment {}", l.len, l.off, l.seg),
        e,
    )
}
