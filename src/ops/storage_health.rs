//! The storage's health as an installer reads it: one table, [`FIGURES`],
//! naming each figure of [`StorageHealth`] once for every surface (the
//! `/metrics` family, the `edgecc outbox status` line), and the error line
//! the daemon logs at start while quarantined sled directories wait for an
//! operator.
//!
//! Every surface reads the health in its JSON form ([`to_json`]), the one
//! the admin socket carries, so the daemon and `--offline` print the same.
//! JSON answers (`/readyz`, `outbox status --json`) carry the whole of it,
//! so a field added to [`StorageHealth`] shows there by itself; to show it
//! in `/metrics` and in the text of `outbox status` too, add one
//! [`Figure`] line to [`FIGURES`] naming its key (a test checks every key
//! exists).

use edgecc_storage::StorageHealth;
use serde_json::Value;

/// How a figure's number reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unit {
    /// A plain count (directories, operations, segments).
    Count,
    /// Bytes.
    Bytes,
    /// Milliseconds (`/metrics` shows seconds).
    Millis,
}

/// One figure of [`StorageHealth`] on every surface.
#[derive(Clone, Copy, Debug)]
pub struct Figure {
    /// The field of [`StorageHealth`] as serde names it. A number is read
    /// as it is, a list by its length, a flag as 0 or 1; `null` (e.g. no
    /// rebuild happened) is shown as `-` and left out of `/metrics`.
    pub key: &'static str,
    /// The `/metrics` family (a gauge; `…_seconds` for [`Unit::Millis`]).
    pub metric: &'static str,
    /// The family's HELP text.
    pub help: &'static str,
    /// The label of its `edgecc outbox status` line (padded there).
    pub label: &'static str,
    /// How the number reads.
    pub unit: Unit,
}

impl Figure {
    /// The figure's number in `health` (the JSON form).
    pub fn read(&self, health: &Value) -> Option<u64> {
        match health.get(self.key)? {
            Value::Number(n) => n.as_u64(),
            Value::Array(a) => Some(a.len() as u64),
            Value::Bool(b) => Some(u64::from(*b)),
            _ => None,
        }
    }

    /// The figure as `outbox status` prints it.
    pub fn text(&self, health: &Value) -> String {
        match (self.read(health), self.unit) {
            (None, _) => "-".to_string(),
            (Some(n), Unit::Count) => n.to_string(),
            (Some(n), Unit::Bytes) => format!("{n} B"),
            (Some(n), Unit::Millis) => format!("{n} ms"),
        }
    }
}

/// Every figure shown, in display order. One line per figure.
#[rustfmt::skip]
pub const FIGURES: &[Figure] = &[
    Figure { key: "quarantined", metric: "edgecc_storage_quarantined_dirs", label: "quarantined", unit: Unit::Count,
        help: "sled directories moved aside and kept for `edgecc outbox salvage` (an operator should look)." },
    Figure { key: "writer_queue_bytes", metric: "edgecc_storage_writer_queue_bytes", label: "writer queue", unit: Unit::Bytes,
        help: "Bytes of changes queued for the storage writer (bounded)." },
    Figure { key: "writer_queue_ops", metric: "edgecc_storage_writer_queue_ops", label: "writer ops", unit: Unit::Count,
        help: "Changes queued for the storage writer." },
    Figure { key: "index_rebuild_ms", metric: "edgecc_storage_index_rebuild_seconds", label: "index rebuild", unit: Unit::Millis,
        help: "Time the last open spent checking or rebuilding sled against the log." },
    Figure { key: "sled_rebuilt", metric: "edgecc_storage_sled_rebuilt", label: "sled rebuilt", unit: Unit::Count,
        help: "1 when the last open set sled aside and filled a fresh one from the log (an unclean stop with a large backlog)." },
    Figure { key: "repaired_entries", metric: "edgecc_storage_repaired_entries", label: "repaired", unit: Unit::Count,
        help: "Entries the last open repaired in sled to match the log." },
    Figure { key: "log_segments", metric: "edgecc_storage_log_segments", label: "log segments", unit: Unit::Count,
        help: "Segments of the storage log." },
    Figure { key: "log_bytes", metric: "edgecc_storage_log_bytes", label: "log bytes", unit: Unit::Bytes,
        help: "Bytes the storage log takes." },
];

/// `health` in its JSON form (what every surface reads).
pub fn to_json(health: &StorageHealth) -> Value {
    // A struct of numbers, lists of paths and options: serializing it
    // cannot fail.
    serde_json::to_value(health).unwrap_or(Value::Null)
}

/// Logs, at error level, the quarantined sled directories `health` lists
/// (this start's or an earlier one's): each start says so until an
/// operator salvaged and removed them.
pub fn log_quarantined(health: &StorageHealth) {
    if health.quarantined.is_empty() {
        return;
    }
    let dirs: Vec<String> = health
        .quarantined
        .iter()
        .map(|d| d.display().to_string())
        .collect();
    tracing::error!(
        quarantined = health.quarantined.len(),
        dirs = %dirs.join(" "),
        "sled directories were moved aside after sled failed; the outbox was rebuilt from the log. \
         Read their records back with `edgecc outbox salvage DIR` (daemon stopped), then remove them."
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every figure names a field [`StorageHealth`] has (a renamed field
    /// would silently show `-`), has its own metric name in the
    /// `edgecc_storage_` family (seconds for times) and a distinct label
    /// that fits the `outbox status` column.
    #[test]
    fn figures_name_real_fields_once() {
        let health = to_json(&StorageHealth::default());
        let mut metrics = std::collections::HashSet::new();
        let mut labels = std::collections::HashSet::new();
        for f in FIGURES {
            assert!(health.get(f.key).is_some(), "no field {}", f.key);
            assert!(f.metric.starts_with("edgecc_storage_"), "{}", f.metric);
            assert_eq!(f.unit == Unit::Millis, f.metric.ends_with("_seconds"));
            assert!(metrics.insert(f.metric), "{}", f.metric);
            assert!(labels.insert(f.label), "{}", f.label);
            assert!(f.label.len() < 15, "{}", f.label);
        }
    }

    /// Numbers read as they are, lists by their length, `null` as none.
    #[test]
    fn figures_read_numbers_lists_and_nothing() {
        let mut health = StorageHealth {
            writer_queue_bytes: 4_096,
            ..StorageHealth::default()
        };
        health.quarantined.push("/d/db.quarantined-1".into());
        let json = to_json(&health);
        let by_key = |k: &str| FIGURES.iter().find(|f| f.key == k).unwrap();
        assert_eq!(by_key("quarantined").read(&json), Some(1));
        assert_eq!(by_key("writer_queue_bytes").text(&json), "4096 B");
        assert_eq!(by_key("index_rebuild_ms").read(&json), None);
        assert_eq!(by_key("index_rebuild_ms").text(&json), "-");
    }
}
