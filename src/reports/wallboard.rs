//! The wallboard's period figures per queue (served by
//! `GET /api/v1/reports/wallboard`, in [`super::http`]), made by the reports' own code
//! ([`figures::queue_rows`]) from the call history: today's row (from
//! the site's local midnight, `[site] time_zone`, as the agent desktop's
//! figures: [`super::today::local_midnight_ms`]), the current 15 minutes'
//! row and today's 15-minute rows for the chart, which start at that
//! midnight. On the 25-hour day of a DST change, the calls of its last
//! hour count in the 15-minute rows but not in the day's row (a row is
//! at most 24 hours). The service level is the reports' (one implementation,
//! [`edgecc_actors::cdr::service_level`]), with each queue's threshold.
//!
//! A call counts once it ended (its record is written then), in the
//! interval it joined the queue. One answer serves every wallboard for
//! [`WALLBOARD_FIGURES_TTL_MS`]: a day's history is read at most that
//! often, however many supervisors watch.

use std::collections::BTreeMap;
use std::sync::Arc;

use edgecc_storage::StateTree;
use serde::Serialize;

use super::config::ReportSettings;
use super::figures::{self, QueueRow, ReportRange, SERVICE_LEVEL_FORMULA};
use super::history;
use super::time::{format_time, Interval, DAY_MS};
use super::today::{local_midnight_ms, zone};

/// How long one answer is reused, ms.
pub const WALLBOARD_FIGURES_TTL_MS: u64 = 5_000;

/// One 15-minute point of a queue's chart.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ChartPoint {
    /// Interval start, ms since the epoch.
    pub start_ms: u64,
    /// Calls that joined the queue.
    pub offered: u64,
    /// Of them, answered.
    pub answered: u64,
    /// Of them, abandoned (short ones included).
    pub abandoned: u64,
    /// The interval's service level, percent (`null`: nothing counts).
    pub service_level_pct: Option<f64>,
}

/// One queue's figures.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct QueueFigures {
    /// The queue.
    pub queue: String,
    /// Its threshold T, ms.
    pub service_level_threshold_ms: u64,
    /// Today (from the site's local midnight) so far.
    pub today: QueueRow,
    /// The current 15 minutes.
    pub current: QueueRow,
    /// Today's 15-minute intervals up to the current one.
    pub intervals: Vec<ChartPoint>,
}

/// The answer.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct WallboardFigures {
    /// How service level is computed.
    pub service_level_formula: &'static str,
    /// Abandons within this many ms are short abandons.
    pub short_abandon_ms: u64,
    /// Start of today: the site's local midnight (RFC 3339 UTC).
    pub day_start: String,
    /// Start of the current 15 minutes (RFC 3339 UTC).
    pub current_start: String,
    /// When the figures were made, ms since the epoch.
    pub made_ms: u64,
    /// History records that did not decode and were left out.
    pub records_skipped: usize,
    /// Per queue, configured ones first.
    pub queues: Vec<QueueFigures>,
    /// The zone whose midnight starts today (`[site] time_zone`).
    pub time_zone: String,
}

/// One answer made: when, with which settings, and the figures.
pub type Made = (u64, ReportSettings, Arc<WallboardFigures>);

/// The last answer made, reused for [`WALLBOARD_FIGURES_TTL_MS`] while the
/// settings are the same (a reload makes it stale at once).
#[derive(Default)]
pub struct FiguresCache {
    /// The last answer.
    last: std::sync::Mutex<Option<Made>>,
}

impl FiguresCache {
    /// The last answer, if made within the TTL with `settings`.
    pub fn fresh(&self, now_ms: u64, settings: &ReportSettings) -> Option<Arc<WallboardFigures>> {
        let last = self.last.lock().ok()?;
        let (at, made_with, figures) = last.as_ref()?;
        (*at <= now_ms && now_ms - *at < WALLBOARD_FIGURES_TTL_MS && made_with == settings)
            .then(|| figures.clone())
    }

    /// Keeps `made` as the last answer.
    pub fn keep(&self, made: Made) {
        if let Ok(mut last) = self.last.lock() {
            *last = Some(made);
        }
    }
}

/// Makes the figures of the day `now_ms` falls in. Blocking: it reads the
/// storage.
pub fn make(
    tree: &StateTree,
    settings: &ReportSettings,
    now_ms: u64,
) -> Result<WallboardFigures, history::HistoryError> {
    let h = history::read(tree, day_start_ms(settings, now_ms), now_ms + 1)?;
    Ok(figures_of(&h, settings, now_ms))
}

/// The start of today: the local midnight of `settings.time_zone`.
fn day_start_ms(settings: &ReportSettings, now_ms: u64) -> u64 {
    local_midnight_ms(now_ms, &zone(&settings.time_zone))
}

/// Today's figures at `now_ms`, of the history `h` read from its start.
fn figures_of(h: &history::History, settings: &ReportSettings, now_ms: u64) -> WallboardFigures {
    let day_start = day_start_ms(settings, now_ms);
    // Built here, not with `ReportRange::new`: rows start at the local
    // midnight itself, not at a UTC day or quarter hour.
    let quarter = Interval::Min15.ms();
    let current_start = now_ms - now_ms.saturating_sub(day_start) % quarter;
    let day = ReportRange {
        from_ms: day_start,
        to_ms: day_start + DAY_MS,
        interval: Interval::Day,
    };
    let quarters = ReportRange {
        from_ms: day_start,
        to_ms: current_start + quarter,
        interval: Interval::Min15,
    };
    let days = figures::queue_rows(&h.calls, &day, settings);
    let mut by_queue: BTreeMap<String, Vec<QueueRow>> = BTreeMap::new();
    for r in figures::queue_rows(&h.calls, &quarters, settings) {
        by_queue.entry(r.queue.clone()).or_default().push(r);
    }
    let queues = days
        .into_iter()
        .map(|today| {
            let mine = by_queue.remove(&today.queue).unwrap_or_default();
            let intervals = mine
                .iter()
                .map(|r| ChartPoint {
                    start_ms: r.start_ms,
                    offered: r.offered,
                    answered: r.answered,
                    abandoned: r.abandoned,
                    service_level_pct: r.service_level_pct,
                })
                .collect();
            QueueFigures {
                queue: today.queue.clone(),
                service_level_threshold_ms: today.service_level_threshold_ms,
                current: mine.last().cloned().unwrap_or_default(),
                today,
                intervals,
            }
        })
        .collect();
    WallboardFigures {
        service_level_formula: SERVICE_LEVEL_FORMULA,
        short_abandon_ms: settings.short_abandon_ms,
        day_start: format_time(day_start),
        current_start: format_time(current_start),
        made_ms: now_ms,
        records_skipped: h.skipped,
        queues,
        time_zone: settings.time_zone.clone(),
    }
}
