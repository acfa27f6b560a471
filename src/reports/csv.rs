//! Report rows as CSV (RFC 4180: comma-separated, CRLF-free `\n` lines,
//! fields quoted when they hold a comma, quote or newline), one header
//! line then one line per row. Empty figures (`null`) are empty fields.

use std::collections::BTreeSet;
use std::fmt::Write as _;

use super::figures::{AgentRow, QueueRow};
use super::ReportRows;

fn field(out: &mut String, v: &str) {
    if v.contains([',', '"', '\n', '\r']) {
        let _ = write!(out, "\"{}\"", v.replace('"', "\"\""));
    } else {
        out.push_str(v);
    }
}

fn opt<T: ToString>(v: Option<T>) -> String {
    v.map(|v| v.to_string()).unwrap_or_default()
}

fn line(out: &mut String, fields: &[String]) {
    for (i, f) in fields.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        field(out, f);
    }
    out.push('\n');
}

const QUEUE_COLUMNS: [&str; 21] = [
    "queue",
    "start",
    "start_ms",
    "offered",
    "answered",
    "answered_within_threshold",
    "abandoned",
    "short_abandoned",
    "timed_out",
    "overflowed",
    "failed",
    "waiting",
    "service_level_threshold_ms",
    "service_level_pct",
    "asa_ms",
    "wait_avg_ms",
    "wait_p90_ms",
    "wait_max_ms",
    "aht_ms",
    "no_answers",
    "formula",
];

fn queue_line(out: &mut String, r: &QueueRow) {
    line(
        out,
        &[
            r.queue.clone(),
            r.start.clone(),
            r.start_ms.to_string(),
            r.offered.to_string(),
            r.answered.to_string(),
            r.answered_within_threshold.to_string(),
            r.abandoned.to_string(),
            r.short_abandoned.to_string(),
            r.timed_out.to_string(),
            r.overflowed.to_string(),
            r.failed.to_string(),
            r.waiting.to_string(),
            r.service_level_threshold_ms.to_string(),
            opt(r.service_level_pct),
            opt(r.asa_ms),
            opt(r.wait_avg_ms),
            opt(r.wait_p90_ms),
            opt(r.wait_max_ms),
            opt(r.aht_ms),
            r.no_answers.to_string(),
            super::figures::SERVICE_LEVEL_FORMULA.to_string(),
        ],
    );
}

const AGENT_COLUMNS: [&str; 15] = [
    "agent",
    "start",
    "start_ms",
    "offered",
    "answered",
    "no_answers",
    "talk_ms",
    "wrap_up_ms",
    "aht_ms",
    "ready_ms",
    "reserved_ms",
    "talking_ms",
    "wrap_up_state_ms",
    "not_ready_total_ms",
    "occupancy_pct",
];

fn agent_line(out: &mut String, r: &AgentRow, reasons: &BTreeSet<String>) {
    let mut f = vec![
        r.agent.clone(),
        r.start.clone(),
        r.start_ms.to_string(),
        r.offered.to_string(),
        r.answered.to_string(),
        r.no_answers.to_string(),
        r.talk_ms.to_string(),
        r.wrap_up_ms.to_string(),
        opt(r.aht_ms),
        r.ready_ms.to_string(),
        r.reserved_ms.to_string(),
        r.talking_ms.to_string(),
        r.wrap_up_state_ms.to_string(),
        r.not_ready_total_ms.to_string(),
        opt(r.occupancy_pct),
    ];
    f.extend(
        reasons
            .iter()
            .map(|reason| r.not_ready_ms.get(reason).copied().unwrap_or(0).to_string()),
    );
    line(out, &f);
}

/// The rows as CSV. Agent reports get one `not_ready_ms:<reason>` column
/// per reason any row has.
pub fn render(rows: &ReportRows) -> String {
    let mut out = String::new();
    match rows {
        // The traffic file is JSON lines, not CSV.
        ReportRows::Traffic(lines) => {
            for l in lines {
                let _ = writeln!(out, "{l}");
            }
        }
        ReportRows::Queues(rows) => {
            let header: Vec<String> = QUEUE_COLUMNS.iter().map(|c| c.to_string()).collect();
            line(&mut out, &header);
            for r in rows {
                queue_line(&mut out, r);
            }
        }
        ReportRows::Agents(rows) => {
            let reasons: BTreeSet<String> = rows
                .iter()
                .flat_map(|r| r.not_ready_ms.keys().cloned())
                .collect();
            let mut header: Vec<String> = AGENT_COLUMNS.iter().map(|c| c.to_string()).collect();
            header.extend(reasons.iter().map(|r| format!("not_ready_ms:{r}")));
            line(&mut out, &header);
            for r in rows {
                agent_line(&mut out, r, &reasons);
            }
        }
    }
    out
}
