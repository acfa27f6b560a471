//! Reports a supervisor trusts: per queue and per agent over intervals,
//! built from the call detail records and agent intervals the actors
//! persist as history (see `edgecc_actors::cdr`), and the history's
//! retention.
//!
//! Service level is stated with every answer:
//! **answered within the queue's threshold T / (offered − short
//! abandons)**, where a short abandon is a caller gone within
//! `reports.short_abandon_ms`; timed-out and overflowed calls count as
//! offered and not answered. One implementation counts it for the
//! reports, the wallboard and `/metrics`:
//! [`edgecc_actors::cdr::service_level`].
//!
//! # Layout
//!
//! - [`config`] — `[reports]`: thresholds (per queue), retention.
//! - [`live`] — `[reports]` as the running daemon applies it (a reload
//!   replaces it).
//! - [`time`] — report times (RFC 3339 UTC, dates, epoch ms) and intervals.
//! - [`history`] — reading a time range of history from the state tree;
//!   pruning by age and bytes.
//! - [`figures`] — the pure arithmetic: records in, rows out.
//! - [`csv`] — rows as CSV.
//! - [`http`] — `GET /api/v1/reports/queues`, `/agents` and `/wallboard`.
//! - [`today`] — an agent's figures since the site's local midnight
//!   (`[site] time_zone`), for its desktop.
//! - [`wallboard`] — the wallboard's figures of today and the current 15
//!   minutes.
//! - [`cli`] — `edgecc report queues|agents|traffic`.
//! - [`traffic`] — the call records as the what-if traffic file.
//!
//! `edgecc report` asks the daemon over the admin socket (or runs
//! offline on the data directory) with [`run`], the same code the HTTP
//! routes use.

pub mod cli;
pub mod config;
pub mod csv;
pub mod figures;
pub mod history;
pub mod http;
pub mod live;
pub mod time;
pub mod today;
pub mod traffic;
pub mod wallboard;

use edgecc_storage::StateTree;
use serde::{Deserialize, Serialize};

use config::ReportSettings;
use figures::{AgentRow, QueueRow, ReportRange, REPORT_ROWS_MAX, SERVICE_LEVEL_FORMULA};
use time::{format_time, Interval};

/// Which report.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReportKind {
    /// One row per queue and interval.
    Queues,
    /// One row per agent and interval.
    Agents,
    /// The what-if traffic file: one JSON line per inbound call.
    Traffic,
}

/// A report request (the admin socket carries it as JSON).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReportQuery {
    /// Which report.
    pub kind: ReportKind,
    /// Start, ms since the epoch (aligned down on the interval).
    pub from_ms: u64,
    /// End, ms since the epoch, exclusive (aligned up on the interval).
    pub to_ms: u64,
    /// Row interval.
    pub interval: Interval,
    /// The thresholds to count with (the CLI sends its config's).
    pub settings: ReportSettings,
}

/// The rows of a report.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(untagged)]
pub enum ReportRows {
    /// Queue rows.
    Queues(Vec<QueueRow>),
    /// Agent rows.
    Agents(Vec<AgentRow>),
    /// Traffic lines.
    Traffic(Vec<serde_json::Value>),
}

/// A report as the API and the CLI give it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Report {
    /// Start of the first interval (RFC 3339 UTC).
    pub from: String,
    /// End of the last interval, exclusive (RFC 3339 UTC).
    pub to: String,
    /// Row interval: `15m`, `1h` or `1d`.
    pub interval: Interval,
    /// How service level is computed.
    pub service_level_formula: &'static str,
    /// Abandons within this many ms are short abandons.
    pub short_abandon_ms: u64,
    /// History records that did not decode and were left out.
    pub records_skipped: usize,
    /// The rows, by entity then time.
    pub rows: ReportRows,
}

/// Why a report could not be made.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// The range or interval is wrong (a sentence naming it).
    #[error("{0}")]
    BadRange(String),
    /// Reading the history failed.
    #[error(transparent)]
    History(#[from] history::HistoryError),
}

/// Makes the report `query` asks for from `tree`'s history. Blocking: it
/// reads the storage (call it off the actors' thread).
pub fn run(tree: &StateTree, query: &ReportQuery) -> Result<Report, ReportError> {
    let range = ReportRange::new(query.from_ms, query.to_ms, query.interval)
        .map_err(ReportError::BadRange)?;
    let s = &query.settings;
    let entities = match query.kind {
        ReportKind::Queues => s.queues.len(),
        ReportKind::Agents => s.agents.len(),
        ReportKind::Traffic => 1,
    }
    .max(1) as u64;
    if range.buckets().saturating_mul(entities) > REPORT_ROWS_MAX {
        return Err(ReportError::BadRange(format!(
            "{} intervals of {} for {entities} rows each is more than {REPORT_ROWS_MAX} rows: use a longer interval or a shorter range",
            range.buckets(),
            query.interval.as_str()
        )));
    }
    let h = history::read(tree, range.from_ms, range.to_ms)?;
    let rows = match query.kind {
        ReportKind::Queues => ReportRows::Queues(figures::queue_rows(&h.calls, &range, s)),
        ReportKind::Agents => {
            ReportRows::Agents(figures::agent_rows(&h.calls, &h.intervals, &range, s))
        }
        ReportKind::Traffic => {
            ReportRows::Traffic(traffic::lines(&h.calls, query.from_ms, query.to_ms))
        }
    };
    Ok(Report {
        from: format_time(range.from_ms),
        to: format_time(range.to_ms),
        interval: query.interval,
        service_level_formula: SERVICE_LEVEL_FORMULA,
        short_abandon_ms: s.short_abandon_ms,
        records_skipped: h.skipped,
        rows,
    })
}

#[cfg(test)]
mod tests;
