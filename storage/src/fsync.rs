//! The fsync helpers every file-writing module of the crate uses: syncing
//! a directory's entries, and listing a directory's names. They depend on
//! nothing else in the crate, so the write-ahead log, the segmented log,
//! the writer and backups all point here and never at each other.

use std::ffi::OsString;
use std::fs::File;
use std::path::Path;

use crate::error::StorageError;

/// `fsync` of a directory: makes its entries (creates, renames, removes)
/// durable.
pub(crate) fn sync_dir(dir: &Path) -> std::io::Result<()> {
    File::open(dir)?.sync_all()
}

/// [`sync_dir`], its error naming the directory.
pub(crate) fn sync_dir_named(dir: &Path) -> Result<(), StorageError> {
    sync_dir(dir).map_err(|e| StorageError::io(format!("sync dir {}", dir.display()), e))
}

/// The names in `dir`, sorted.
pub(crate) fn list_names(dir: &Path) -> std::io::Result<Vec<OsString>> {
    let mut names = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        names.push(entry?.file_name());
    }
    names.sort();
    Ok(names)
}
