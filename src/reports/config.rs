//! `[reports]`: what reports count and how long call history is kept.
//!
//! ```toml
//! [reports]
//! service_level_ms = 20000        # default threshold T of every queue
//! short_abandon_ms = 5000         # abandons faster than this are left out
//! retention_days = 90             # history older than this is pruned
//! retention_bytes = 268435456     # and the oldest beyond this many bytes
//! prune_every_ms = 600000         # how often the pruner looks
//!
//! [reports.queues.sales]          # per-queue overrides
//! service_level_ms = 30000
//! ```

use std::collections::BTreeMap;

use edgecc_actors::cdr::service_level::Thresholds;
use edgecc_actors::ContactCenterConfig;
use serde::{Deserialize, Serialize};

/// Default service-level threshold: 20 s, the industry's usual 80/20.
pub const SERVICE_LEVEL_MS_DEFAULT: u64 = 20_000;
/// Default short-abandon threshold: callers gone within 5 s (a misdial, a
/// caller who heard the greeting) are not held against the service level.
pub const SHORT_ABANDON_MS_DEFAULT: u64 = 5_000;
/// Default history age: 90 days.
pub const RETENTION_DAYS_DEFAULT: u64 = 90;
/// Default history size: 256 MiB, about 200,000 calls with their agents'
/// intervals; an edge box's disk never fills with history.
pub const RETENTION_BYTES_DEFAULT: u64 = 256 * 1024 * 1024;
/// Smallest `retention_bytes`: 1 MiB (a day of a small center).
pub const RETENTION_BYTES_MIN: u64 = 1024 * 1024;
/// Longest `retention_days`: ten years.
pub const RETENTION_DAYS_MAX: u64 = 3_650;
/// Default pruning interval: 10 minutes.
pub const PRUNE_EVERY_MS_DEFAULT: u64 = 600_000;
/// Shortest pruning interval: 10 s (each round reads the history's keys).
pub const PRUNE_EVERY_MS_MIN: u64 = 10_000;
/// Longest threshold accepted (service level, short abandon): one hour.
pub const THRESHOLD_MS_MAX: u64 = 3_600_000;

/// `[reports]` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawReports {
    /// Default service-level threshold of every queue, ms.
    pub service_level_ms: Option<u64>,
    /// Abandons within this many ms are short abandons.
    pub short_abandon_ms: Option<u64>,
    /// History older than this many days is pruned.
    pub retention_days: Option<u64>,
    /// History beyond this many bytes is pruned, oldest first.
    pub retention_bytes: Option<u64>,
    /// How often the pruner runs, ms.
    pub prune_every_ms: Option<u64>,
    /// `[reports.queues.<id>]`: per-queue overrides.
    #[serde(default)]
    pub queues: BTreeMap<String, RawQueueReports>,
}

/// `[reports.queues.<id>]` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawQueueReports {
    /// The queue's own service-level threshold, ms.
    pub service_level_ms: Option<u64>,
}

/// The resolved `[reports]` section.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReportSettings {
    /// Threshold T of queues without their own, ms.
    pub service_level_ms: u64,
    /// Per-queue thresholds, ms.
    pub queue_service_level_ms: BTreeMap<String, u64>,
    /// Abandons within this many ms are short abandons.
    pub short_abandon_ms: u64,
    /// History older than this many days is pruned.
    pub retention_days: u64,
    /// History beyond this many bytes is pruned, oldest first.
    pub retention_bytes: u64,
    /// How often the pruner runs, ms.
    pub prune_every_ms: u64,
    /// The configured queues: each gets a row per interval, even an empty
    /// one.
    pub queues: Vec<String>,
    /// The configured agents: each gets a row per interval.
    pub agents: Vec<String>,
    /// The site's IANA time zone (`[site] time_zone`, checked): an agent's
    /// "today" starts at its midnight ([`super::today`]).
    #[serde(default = "default_time_zone")]
    pub time_zone: String,
}

/// The zone when `[site] time_zone` is not set.
pub const TIME_ZONE_DEFAULT: &str = "UTC";

fn default_time_zone() -> String {
    TIME_ZONE_DEFAULT.to_string()
}

impl Default for ReportSettings {
    fn default() -> Self {
        ReportSettings {
            service_level_ms: SERVICE_LEVEL_MS_DEFAULT,
            queue_service_level_ms: BTreeMap::new(),
            short_abandon_ms: SHORT_ABANDON_MS_DEFAULT,
            retention_days: RETENTION_DAYS_DEFAULT,
            retention_bytes: RETENTION_BYTES_DEFAULT,
            prune_every_ms: PRUNE_EVERY_MS_DEFAULT,
            queues: Vec::new(),
            agents: Vec::new(),
            time_zone: default_time_zone(),
        }
    }
}

impl ReportSettings {
    /// The service-level threshold of `queue`, ms.
    pub fn service_level_ms_of(&self, queue: &str) -> u64 {
        self.queue_service_level_ms
            .get(queue)
            .copied()
            .unwrap_or(self.service_level_ms)
    }

    /// The thresholds `queue`'s service level is counted with.
    pub fn thresholds_of(&self, queue: &str) -> Thresholds {
        Thresholds {
            service_level_ms: self.service_level_ms_of(queue),
            short_abandon_ms: self.short_abandon_ms,
        }
    }
}

fn threshold(key: &str, v: Option<u64>, default: u64) -> Result<u64, (String, String)> {
    match v {
        None => Ok(default),
        Some(ms) if ms > THRESHOLD_MS_MAX => Err((
            key.to_string(),
            format!("{ms} is above the limit of {THRESHOLD_MS_MAX} ms"),
        )),
        Some(ms) => Ok(ms),
    }
}

/// Checks `[reports]` against the configured queues; an error is (dotted
/// key, sentence).
pub fn resolve(
    raw: &RawReports,
    center: &ContactCenterConfig,
) -> Result<ReportSettings, (String, String)> {
    let d = ReportSettings::default();
    let service_level_ms = threshold(
        "reports.service_level_ms",
        raw.service_level_ms,
        d.service_level_ms,
    )?;
    if service_level_ms == 0 {
        return Err(("reports.service_level_ms".into(), "must be above 0".into()));
    }
    let short_abandon_ms = threshold(
        "reports.short_abandon_ms",
        raw.short_abandon_ms,
        d.short_abandon_ms,
    )?;
    let retention_days = raw.retention_days.unwrap_or(d.retention_days);
    if retention_days == 0 || retention_days > RETENTION_DAYS_MAX {
        return Err((
            "reports.retention_days".into(),
            format!("{retention_days} is not between 1 and {RETENTION_DAYS_MAX}"),
        ));
    }
    let retention_bytes = raw.retention_bytes.unwrap_or(d.retention_bytes);
    if retention_bytes < RETENTION_BYTES_MIN {
        return Err((
            "reports.retention_bytes".into(),
            format!("{retention_bytes} is below the minimum of {RETENTION_BYTES_MIN} bytes"),
        ));
    }
    let prune_every_ms = raw.prune_every_ms.unwrap_or(d.prune_every_ms);
    if prune_every_ms < PRUNE_EVERY_MS_MIN {
        return Err((
            "reports.prune_every_ms".into(),
            format!("{prune_every_ms} is below the minimum of {PRUNE_EVERY_MS_MIN} ms"),
        ));
    }
    let queues: Vec<String> = center.queues.iter().map(|q| q.id.clone()).collect();
    let mut queue_service_level_ms = BTreeMap::new();
    for (id, q) in &raw.queues {
        if !queues.contains(id) {
            return Err((
                format!("reports.queues.{id}"),
                format!("no queue `{id}` is configured"),
            ));
        }
        if let Some(ms) = q.service_level_ms {
            let key = format!("reports.queues.{id}.service_level_ms");
            let ms = threshold(&key, Some(ms), ms)?;
            if ms == 0 {
                return Err((key, "must be above 0".into()));
            }
            queue_service_level_ms.insert(id.clone(), ms);
        }
    }
    Ok(ReportSettings {
        service_level_ms,
        queue_service_level_ms,
        short_abandon_ms,
        retention_days,
        retention_bytes,
        prune_every_ms,
        queues,
        agents: center.agents.iter().map(|a| a.id.clone()).collect(),
        ..ReportSettings::default()
    })
}

#[cfg(test)]
mod tests {
    use crate::config::Config;
    use std::path::Path;

    const QUEUE: &str = "[[queues]]\nid = \"sales\"\nname = \"Sales\"\ndnis = [\"100\"]\n";

    /// Goal: `[reports]` resolves with per-queue thresholds, and each
    /// wrong value is refused naming the file and the dotted key.
    #[test]
    fn reports_section_is_checked_by_key() {
        let text = format!("{QUEUE}[reports]\nshort_abandon_ms = 3000\n[reports.queues.sales]\nservice_level_ms = 30000\n");
        let c = Config::parse(&text, Path::new("/x/r.toml")).unwrap();
        assert_eq!(c.reports.service_level_ms_of("sales"), 30_000);
        assert_eq!(c.reports.service_level_ms_of("other"), 20_000);
        assert_eq!(c.reports.short_abandon_ms, 3_000);
        assert_eq!(c.reports.queues, vec!["sales".to_string()]);
        for (body, key) in [
            (
                "[reports.queues.nope]\nservice_level_ms = 1\n",
                "reports.queues.nope",
            ),
            (
                "[reports]\nretention_bytes = 10\n",
                "reports.retention_bytes",
            ),
            ("[reports]\nretention_days = 0\n", "reports.retention_days"),
            (
                "[reports]\nservice_level_ms = 0\n",
                "reports.service_level_ms",
            ),
            ("[reports]\nprune_every_ms = 5\n", "reports.prune_every_ms"),
            (
                "[reports.queues.sales]\nservice_level_ms = 99999999\n",
                "reports.queues.sales.service_level_ms",
            ),
        ] {
            let e = Config::parse(&format!("{QUEUE}{body}"), Path::new("/x/r.toml")).unwrap_err();
            assert_eq!(e.key, key, "{body}: {e}");
            assert_eq!(e.file, Path::new("/x/r.toml"));
        }
    }
}
