//! How `edgecc simulate` prints a [`Simulation`]: a table with one column
//! per config (baseline, then new) for people, or one JSON document for
//! scripts. Both state the service-level formula.

use std::fmt::Write;

use serde_json::json;

use super::figures::{QueueFigures, SERVICE_LEVEL_FORMULA};
use super::Simulation;

/// Width of the row labels.
const LABEL_WIDTH: usize = 24;
/// Width of each config's column.
const COLUMN_WIDTH: usize = 14;

/// The side-by-side table.
pub fn text(s: &Simulation) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# traffic: {} ({} calls)",
        s.traffic.display(),
        s.calls
    );
    for run in &s.runs {
        let _ = writeln!(
            out,
            "# {}: {} (day of {}, replayed in {:.1} s)",
            run.label,
            run.config.display(),
            duration(run.span_ms as f64),
            run.wall_ms as f64 / 1_000.0
        );
    }
    let short = s.runs.last().map_or(0, |r| r.settings.short_abandon_ms);
    let _ = writeln!(out, "# {SERVICE_LEVEL_FORMULA}; short_abandon_ms = {short}");
    let header = |out: &mut String, title: &str| {
        let _ = write!(out, "\n{title:<LABEL_WIDTH$}");
        for run in &s.runs {
            let _ = write!(out, "{:>COLUMN_WIDTH$}", run.label);
        }
        out.push('\n');
    };
    let mut queue_ids: Vec<&str> = Vec::new();
    for run in &s.runs {
        for q in &run.queues {
            if !queue_ids.contains(&q.queue.as_str()) {
                queue_ids.push(&q.queue);
            }
        }
    }
    type Cell = fn(&QueueFigures) -> String;
    let rows: [(&str, Cell); 11] = [
        ("offered", |q| q.offered.to_string()),
        ("answered", |q| q.answered.to_string()),
        ("abandoned", |q| q.abandoned.to_string()),
        ("  of which short", |q| q.abandoned_short.to_string()),
        ("timed out", |q| q.timed_out.to_string()),
        ("overflowed", |q| q.overflowed.to_string()),
        ("failed or unfinished", |q| {
            (q.failed + q.unfinished).to_string()
        }),
        ("SL threshold", |q| duration(q.service_level_ms as f64)),
        ("service level", |q| {
            q.service_level_pct
                .map_or("-".to_string(), |v| format!("{v:.1}%"))
        }),
        ("ASA", |q| q.asa_ms.map_or("-".into(), duration)),
        ("p90 wait", |q| {
            q.wait_p90_ms.map_or("-".into(), |v| duration(v as f64))
        }),
    ];
    for id in queue_ids {
        header(&mut out, &format!("queue {id}"));
        for (label, cell) in rows {
            let _ = write!(out, "  {label:<w$}", w = LABEL_WIDTH - 2);
            for run in &s.runs {
                let value = run
                    .queues
                    .iter()
                    .find(|q| q.queue == id)
                    .map_or("-".to_string(), cell);
                let _ = write!(out, "{value:>COLUMN_WIDTH$}");
            }
            out.push('\n');
        }
    }
    let mut agent_ids: Vec<&str> = Vec::new();
    for run in &s.runs {
        for a in &run.agents {
            if !agent_ids.contains(&a.agent.as_str()) {
                agent_ids.push(&a.agent);
            }
        }
    }
    header(&mut out, "agent occupancy");
    for id in agent_ids {
        let _ = write!(out, "  {id:<w$}", w = LABEL_WIDTH - 2);
        for run in &s.runs {
            let value = run
                .agents
                .iter()
                .find(|a| a.agent == id)
                .map_or("-".to_string(), |a| percent(a.occupancy));
            let _ = write!(out, "{value:>COLUMN_WIDTH$}");
        }
        out.push('\n');
    }
    out
}

/// The JSON document.
pub fn json(s: &Simulation) -> serde_json::Value {
    json!({
        "traffic": s.traffic.display().to_string(),
        "calls": s.calls,
        "service_level_formula": SERVICE_LEVEL_FORMULA,
        "runs": s.runs.iter().map(|r| json!({
            "label": r.label,
            "config": r.config.display().to_string(),
            "short_abandon_ms": r.settings.short_abandon_ms,
            "span_ms": r.span_ms,
            "wall_ms": r.wall_ms,
            "queues": r.queues,
            "agents": r.agents,
        })).collect::<Vec<_>>(),
    })
}

/// `81.3%`, or `-` when undefined.
fn percent(v: Option<f64>) -> String {
    v.map_or("-".to_string(), |v| format!("{:.1}%", v * 100.0))
}

/// `12.3 s`, `4.5 min` or `7.2 h`.
fn duration(ms: f64) -> String {
    if ms < 60_000.0 {
        format!("{:.1} s", ms / 1_000.0)
    } else if ms < 3_600_000.0 {
        format!("{:.1} min", ms / 60_000.0)
    } else {
        format!("{:.1} h", ms / 3_600_000.0)
    }
}
