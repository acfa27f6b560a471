//! `[storage]`: the data directory's storage options as the config file
//! writes them, with their bounds and defaults. The file as a whole is
//! assembled and reported on by [`crate::config`], which calls [`resolve`];
//! [`crate::system::storage`] opens the data directory with the result.
//! Errors are (dotted key, message).

use serde::Deserialize;

/// sled page cache by default: an edge box has little memory, and sled's own
/// default (1 GiB) would let RSS grow with the backlog.
pub const STORAGE_CACHE_BYTES_DEFAULT: u64 = 16 * 1024 * 1024;
/// Smallest sled cache we accept: below this sled thrashes on every read.
pub const STORAGE_CACHE_BYTES_MIN: u64 = 1024 * 1024;
/// Largest sled cache we accept: more would defeat the point of a bounded RSS.
pub const STORAGE_CACHE_BYTES_MAX: u64 = 1024 * 1024 * 1024;
/// Largest write-ahead log we accept (the smallest is the storage crate's
/// `WAL_BYTES_MIN`): the file is preallocated, so this is disk taken up
/// front.
pub const STORAGE_WAL_BYTES_MAX: u64 = 1024 * 1024 * 1024;

/// `[storage]` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawStorage {
    /// sled page cache size in bytes.
    pub cache_capacity_bytes: Option<u64>,
    /// Size of the preallocated write-ahead log file in bytes.
    pub wal_bytes: Option<u64>,
}

/// `[storage]` resolved: every value in range, defaults filled in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StorageSettings {
    /// sled cache in bytes.
    pub cache_capacity_bytes: u64,
    /// Write-ahead log size in bytes.
    pub wal_bytes: u64,
}

impl Default for StorageSettings {
    fn default() -> Self {
        StorageSettings {
            cache_capacity_bytes: STORAGE_CACHE_BYTES_DEFAULT,
            wal_bytes: edgecc_storage::WAL_BYTES_DEFAULT,
        }
    }
}

/// Checks `[storage]` and fills its defaults.
pub fn resolve(raw: &RawStorage) -> Result<StorageSettings, (String, String)> {
    let defaults = StorageSettings::default();
    let cache = raw
        .cache_capacity_bytes
        .unwrap_or(defaults.cache_capacity_bytes);
    if !(STORAGE_CACHE_BYTES_MIN..=STORAGE_CACHE_BYTES_MAX).contains(&cache) {
        return Err((
            "storage.cache_capacity_bytes".to_string(),
            format!(
                "{cache} is out of range: use {STORAGE_CACHE_BYTES_MIN} to {STORAGE_CACHE_BYTES_MAX}"
            ),
        ));
    }
    let wal = raw.wal_bytes.unwrap_or(defaults.wal_bytes);
    let wal_min = edgecc_storage::WAL_BYTES_MIN;
    if !(wal_min..=STORAGE_WAL_BYTES_MAX).contains(&wal) {
        return Err((
            "storage.wal_bytes".to_string(),
            format!("{wal} is out of range: use {wal_min} to {STORAGE_WAL_BYTES_MAX}"),
        ));
    }
    Ok(StorageSettings {
        cache_capacity_bytes: cache,
        wal_bytes: wal,
    })
}
