//! `/metrics` in the Prometheus text format: it owns every metric name;
//! the figures come from the actors' snapshot (queue waits and service
//! level included), the storage and the CRM sync worker.

use std::fmt::Write as _;

use edgecc_actors::waits::WAIT_BUCKETS_S;

use crate::crm::sync::{Circuit, GetSyncStatus};

use super::views;
use super::AppState;

/// Ended calls by terminal reason (counter; label `outcome`).
pub const CALLS_ENDED_TOTAL: &str = "edgecc_calls_ended_total";
/// Live calls (gauge).
pub const CALLS_LIVE: &str = "edgecc_calls_live";
/// Calls waiting per queue (gauge; label `queue`).
pub const QUEUE_DEPTH: &str = "edgecc_queue_depth";
/// Longest current wait per queue, seconds (gauge; label `queue`).
pub const QUEUE_LONGEST_WAIT_SECONDS: &str = "edgecc_queue_longest_wait_seconds";
/// Wait of answered queue calls, seconds (histogram; label `queue`).
pub const QUEUE_WAIT_SECONDS: &str = "edgecc_queue_wait_seconds";
/// Agents per state (gauge; label `state`).
pub const AGENTS: &str = "edgecc_agents";
/// Pending outbox records (gauge).
pub const OUTBOX_DEPTH: &str = "edgecc_outbox_depth";
/// Age of the oldest pending record, seconds (gauge).
pub const OUTBOX_OLDEST_AGE_SECONDS: &str = "edgecc_outbox_oldest_age_seconds";
/// Dead letters (gauge).
pub const OUTBOX_DEAD_LETTERS: &str = "edgecc_outbox_dead_letters";
/// CRM circuit breaker, 1 for the current state (gauge; label `state`).
pub const CRM_CIRCUIT: &str = "edgecc_crm_circuit";
/// Records the CRM confirmed (counter).
pub const CRM_DELIVERED_TOTAL: &str = "edgecc_crm_delivered_total";
/// Created→delivered latency quantiles, seconds (gauge; label `quantile`).
pub const CRM_DELIVERY_LATENCY_SECONDS: &str = "edgecc_crm_delivery_latency_seconds";

/// Agent states, for zero-filled gauges.
const AGENT_STATES: [&str; 6] = [
    "logged_out",
    "not_ready",
    "ready",
    "reserved",
    "talking",
    "wrap_up",
];

/// Renders every metric.
pub async fn render(state: &AppState) -> Result<String, super::error::ApiError> {
    let snap = views::center(state, true).await?;
    let now_ms = crate::clock::now_ms();
    let mut out = String::new();

    head(
        &mut out,
        CALLS_ENDED_TOTAL,
        "counter",
        "Ended calls by terminal reason.",
    );
    for outcome in [
        "completed",
        "abandoned",
        "overflowed",
        "timed_out",
        "failed",
    ] {
        let n = snap.ended.get(outcome).copied().unwrap_or(0);
        let _ = writeln!(out, "{CALLS_ENDED_TOTAL}{{outcome=\"{outcome}\"}} {n}");
    }
    head(&mut out, CALLS_LIVE, "gauge", "Live calls.");
    let _ = writeln!(out, "{CALLS_LIVE} {}", snap.calls.len());

    head(&mut out, QUEUE_DEPTH, "gauge", "Calls waiting per queue.");
    for q in &snap.queues {
        let _ = writeln!(
            out,
            "{QUEUE_DEPTH}{{queue=\"{}\"}} {}",
            esc(&q.queue.0),
            q.waiting.len()
        );
    }
    head(
        &mut out,
        QUEUE_LONGEST_WAIT_SECONDS,
        "gauge",
        "Longest current wait per queue.",
    );
    for q in &snap.queues {
        let longest = q.wait_ms.iter().copied().max().unwrap_or(0);
        let _ = writeln!(
            out,
            "{QUEUE_LONGEST_WAIT_SECONDS}{{queue=\"{}\"}} {:.3}",
            esc(&q.queue.0),
            longest as f64 / 1000.0
        );
    }
    head(
        &mut out,
        QUEUE_WAIT_SECONDS,
        "histogram",
        "Wait of answered queue calls.",
    );
    for q in &snap.queues {
        let f = &q.answered;
        let name = esc(&q.queue.0);
        let mut cumulative = 0;
        for (i, le) in WAIT_BUCKETS_S.iter().enumerate() {
            cumulative += f.wait_buckets[i];
            let _ = writeln!(
                out,
                "{QUEUE_WAIT_SECONDS}_bucket{{queue=\"{name}\",le=\"{le}\"}} {cumulative}"
            );
        }
        cumulative += f.wait_buckets[WAIT_BUCKETS_S.len()];
        let _ = writeln!(
            out,
            "{QUEUE_WAIT_SECONDS}_bucket{{queue=\"{name}\",le=\"+Inf\"}} {cumulative}"
        );
        let _ = writeln!(
            out,
            "{QUEUE_WAIT_SECONDS}_sum{{queue=\"{name}\"}} {:.3}",
            f.wait_sum_ms as f64 / 1000.0
        );
        let _ = writeln!(
            out,
            "{QUEUE_WAIT_SECONDS}_count{{queue=\"{name}\"}} {cumulative}"
        );
    }

    head(&mut out, AGENTS, "gauge", "Agents per state.");
    for s in AGENT_STATES {
        let n = snap.agents.iter().filter(|a| a.state.name() == s).count();
        let _ = writeln!(out, "{AGENTS}{{state=\"{s}\"}} {n}");
    }

    if let Ok(stats) = state.storage.outbox().stats(now_ms) {
        head(&mut out, OUTBOX_DEPTH, "gauge", "Pending outbox records.");
        let _ = writeln!(out, "{OUTBOX_DEPTH} {}", stats.depth);
        head(
            &mut out,
            OUTBOX_OLDEST_AGE_SECONDS,
            "gauge",
            "Age of the oldest pending record.",
        );
        let _ = writeln!(
            out,
            "{OUTBOX_OLDEST_AGE_SECONDS} {:.3}",
            stats.oldest_age_ms as f64 / 1000.0
        );
        head(&mut out, OUTBOX_DEAD_LETTERS, "gauge", "Dead letters.");
        let _ = writeln!(out, "{OUTBOX_DEAD_LETTERS} {}", stats.dead_letters);
    }

    if let Some(sync) = &state.sync {
        if let Ok(s) = sync.send(GetSyncStatus).await {
            head(
                &mut out,
                CRM_CIRCUIT,
                "gauge",
                "CRM circuit breaker state (1 = current).",
            );
            for (name, c) in [
                ("closed", Circuit::Closed),
                ("open", Circuit::Open),
                ("half_open", Circuit::HalfOpen),
            ] {
                let v = u8::from(s.circuit == Some(c));
                let _ = writeln!(out, "{CRM_CIRCUIT}{{state=\"{name}\"}} {v}");
            }
            head(
                &mut out,
                CRM_DELIVERED_TOTAL,
                "counter",
                "Records the CRM confirmed.",
            );
            let _ = writeln!(out, "{CRM_DELIVERED_TOTAL} {}", s.delivered);
            head(
                &mut out,
                CRM_DELIVERY_LATENCY_SECONDS,
                "gauge",
                "Created to delivered latency.",
            );
            let _ = writeln!(
                out,
                "{CRM_DELIVERY_LATENCY_SECONDS}{{quantile=\"0.5\"}} {:.3}",
                s.delivery_latency_p50_ms as f64 / 1000.0
            );
            let _ = writeln!(
                out,
                "{CRM_DELIVERY_LATENCY_SECONDS}{{quantile=\"0.99\"}} {:.3}",
                s.delivery_latency_p99_ms as f64 / 1000.0
            );
        }
    }
    Ok(out)
}

/// Writes a metric's HELP and TYPE lines.
fn head(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

/// Escapes a label value.
fn esc(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}
