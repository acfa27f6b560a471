//! `edgecc outbox salvage DIR`: the records of a quarantined sled directory
//! (`db.quarantined-*`, moved aside when sled failed) read back into the
//! live outbox, through `edgecc_storage::salvage`, without duplicates
//! (same correlation id and kind as a record the outbox holds, pending or
//! dead).
//!
//! It writes into the data directory, so it opens it itself and is refused
//! while the daemon holds it. The quarantined directory is left where it
//! is: the operator removes it once satisfied.

use std::fmt::Write as _;
use std::path::Path;

use edgecc_storage::SalvageSummary;

use super::admin::requests::run_offline;
use super::admin::AdminError;
use crate::config::Config;

/// Salvages `dir` into the outbox of `data_dir`.
pub fn salvage(dir: &Path, data_dir: &Path, config: &Config) -> Result<SalvageSummary, AdminError> {
    // sled would create a missing directory and find nothing in it.
    if !dir.is_dir() {
        return Err(AdminError::new(
            "not_found",
            format!("{} is not a directory", dir.display()),
        ));
    }
    if !data_dir.is_dir() {
        return Err(AdminError::new(
            "not_found",
            format!("no data directory at {}", data_dir.display()),
        ));
    }
    run_offline(
        data_dir,
        config,
        "salvage writes into it: stop the daemon first (systemctl stop edgecc)",
        |storage| async move {
            edgecc_storage::salvage(dir, &storage)
                .await
                .map_err(|e| AdminError::new("storage", e.to_string()))
        },
    )
}

/// The summary as text for people.
pub fn render_text(summary: &SalvageSummary) -> String {
    let mut out = String::new();
    let how = if summary.opened {
        "read through sled"
    } else {
        "sled could not open it; its files were scanned"
    };
    let _ = writeln!(out, "salvaged {} ({how})", summary.dir.display());
    let _ = writeln!(out, "found          {}", summary.found);
    let _ = writeln!(
        out,
        "recovered      {}  (appended to the outbox)",
        summary.appended
    );
    let _ = writeln!(
        out,
        "already there  {}  (duplicates, skipped)",
        summary.duplicates
    );
    let _ = writeln!(
        out,
        "unreadable     {}  (damaged, skipped)",
        summary.unreadable
    );
    let _ = writeln!(
        out,
        "the directory is left in place; remove it when you no longer need it"
    );
    out
}
