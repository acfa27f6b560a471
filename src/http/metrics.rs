//! `/metrics` in the Prometheus text format (0.0.4): it owns every metric
//! name but the storage health's (named in [`storage_health::FIGURES`]);
//! the figures come from the actors' snapshot (queue waits included; the
//! service level's counters from the ended calls' records), the storage,
//! the CRM sync worker and the ARI application's ownership.
//!
//! A scrape first gathers the figures (the actors and the sync worker are
//! asked over their mailboxes) into a [`Scrape`], then hands it to
//! `prometheus-client` as a one-shot [`Collector`]: the crate writes the
//! HELP and TYPE lines, the `_total` suffix of counters, the histogram's
//! cumulative `_bucket`/`_sum`/`_count` lines and the label escaping. Names
//! here are the families' names; a counter's samples carry `_total`
//! ([`CALLS_ENDED`] is scraped as `edgecc_calls_ended_total`).

use edgecc_actors::waits::WAIT_BUCKETS_S;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;

use edgecc_actors::registry::call_metrics::{CallMetrics, GetCallMetrics, Histogram};

use crate::crm::sync::{Circuit, GetSyncStatus};
use crate::ops::storage_health::{self, Unit};

use super::views;
use super::AppState;

/// `Content-Type` of the answer (the Prometheus text format 0.0.4).
pub const CONTENT_TYPE: &str = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

/// Ended calls by terminal reason (counter, scraped as
/// `edgecc_calls_ended_total`; label `outcome`).
pub const CALLS_ENDED: &str = "edgecc_calls_ended";
/// Live calls (gauge).
pub const CALLS_LIVE: &str = "edgecc_calls_live";
/// Calls waiting per queue (gauge; label `queue`).
pub const QUEUE_DEPTH: &str = "edgecc_queue_depth";
/// Longest current wait per queue, seconds (gauge; label `queue`).
pub const QUEUE_LONGEST_WAIT_SECONDS: &str = "edgecc_queue_longest_wait_seconds";
/// Wait of answered queue calls, seconds (histogram; label `queue`).
pub const QUEUE_WAIT_SECONDS: &str = "edgecc_queue_wait_seconds";
/// Waits in a queue to answer, abandon or time-out, seconds (histogram;
/// label `queue`); the buckets include the queue's service-level threshold.
pub const QUEUE_CALL_WAIT_SECONDS: &str = "edgecc_queue_call_wait_seconds";
/// Handle time (talk + hold + wrap-up) of calls answered from a queue,
/// seconds (histogram; label `queue`).
pub const QUEUE_HANDLE_SECONDS: &str = "edgecc_queue_handle_seconds";
/// Ended calls by their last queue and terminal reason (counter, scraped
/// as `edgecc_queue_calls_ended_total`; labels `queue`, `outcome`).
pub const QUEUE_CALLS_ENDED: &str = "edgecc_queue_calls_ended";
/// Queue stints of ended calls (counter, scraped as
/// `edgecc_queue_calls_offered_total`; label `queue`): the reports'
/// offered, the service level's base.
pub const QUEUE_CALLS_OFFERED: &str = "edgecc_queue_calls_offered";
/// Of them, answered within the queue's threshold (counter, scraped as
/// `edgecc_queue_calls_answered_within_threshold_total`; label `queue`).
pub const QUEUE_CALLS_ANSWERED_WITHIN_THRESHOLD: &str =
    "edgecc_queue_calls_answered_within_threshold";
/// Of them, abandoned within `[reports] short_abandon_ms` (counter,
/// scraped as `edgecc_queue_calls_short_abandoned_total`; label `queue`).
/// Service level, as the reports count it: answered within threshold /
/// (offered - short abandoned).
pub const QUEUE_CALLS_SHORT_ABANDONED: &str = "edgecc_queue_calls_short_abandoned";
/// A queue's service-level threshold, seconds (gauge; labels `queue` and
/// `bucket`, the `le` of the [`QUEUE_CALL_WAIT_SECONDS`] bucket it bounds,
/// so PromQL picks that bucket: `label_replace` it to `le`, then
/// `and on(queue, le)`; promtool forbids `le` outside histograms).
pub const QUEUE_SERVICE_LEVEL_THRESHOLD_SECONDS: &str =
    "edgecc_queue_service_level_threshold_seconds";
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
/// Records the CRM confirmed (counter, scraped as
/// `edgecc_crm_delivered_total`).
pub const CRM_DELIVERED: &str = "edgecc_crm_delivered";
/// Created→delivered latency quantiles, seconds (gauge; label `quantile`).
pub const CRM_DELIVERY_LATENCY_SECONDS: &str = "edgecc_crm_delivery_latency_seconds";

/// Live calls restored from the saved state at this start and reconciled
/// with the PBX (gauge; no sample on a fresh start, nor before the
/// reconcile).
pub const RESTART_CALLS_RESTORED: &str = "edgecc_restart_calls_restored";
/// Of those, calls the PBX still had and that carried on (gauge; no sample
/// on a fresh start, nor before the reconcile).
pub const RESTART_CALLS_ADOPTED: &str = "edgecc_restart_calls_adopted";
/// 1 while another client owns the ARI application (gauge; only with
/// `pbx.kind = "ari"`): edgecc gets no calls until an operator takes it
/// back.
pub const ARI_APP_TAKEN_OVER: &str = "edgecc_ari_app_taken_over";
/// Times another client took the ARI application over (counter, scraped
/// as `edgecc_ari_app_takeovers_total`).
pub const ARI_APP_TAKEOVERS: &str = "edgecc_ari_app_takeovers";
/// 1 for this box's role in an HA pair (gauge; label `role`: `standalone`
/// or `active`, see [`crate::ops::ha_role`]).
pub const HA_ROLE: &str = "edgecc_ha_role";

/// Agent states, for zero-filled gauges.
const AGENT_STATES: [&str; 6] = [
    "logged_out",
    "not_ready",
    "ready",
    "reserved",
    "talking",
    "wrap_up",
];

/// Terminal reasons, for zero-filled counters.
const OUTCOMES: [&str; 6] = [
    "completed",
    "abandoned",
    "overflowed",
    "timed_out",
    "failed",
    "pbx_lost",
];

/// The labels of one sample, in the order they are written.
pub type Labels = Vec<(&'static str, String)>;

/// One sample's value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// A count (counter or integer gauge): written without a fraction.
    Count(u64),
    /// A measure (seconds): written as a float.
    Measure(f64),
    /// A histogram from per-bucket (not cumulative) counts; the last count
    /// is the `+Inf` bucket's.
    Histogram {
        /// Upper bounds of the finite buckets.
        bounds: Vec<f64>,
        /// Count per bucket: one per bound, then the `+Inf` one.
        counts: Vec<u64>,
        /// Sum of the observations.
        sum: f64,
    },
}

/// One metric family as one scrape saw it.
#[derive(Debug, Clone)]
pub struct Family {
    /// The family's name (one of the constants here).
    pub name: &'static str,
    /// The HELP text.
    pub help: &'static str,
    /// Counter, gauge or histogram.
    pub kind: MetricType,
    /// Its samples (none: HELP and TYPE only, as for a center without
    /// queues).
    pub samples: Vec<(Labels, Value)>,
}

impl Family {
    /// A family without samples yet.
    pub fn new(name: &'static str, help: &'static str, kind: MetricType) -> Family {
        Family {
            name,
            help,
            kind,
            samples: Vec::new(),
        }
    }

    /// Adds a sample.
    pub fn sample(mut self, labels: Labels, value: Value) -> Family {
        self.samples.push((labels, value));
        self
    }
}

/// Every family one scrape found, in the order they are written; the
/// one-shot collector `prometheus-client` encodes.
#[derive(Debug, Default)]
pub struct Scrape {
    /// The families, in order.
    pub families: Vec<Family>,
}

impl Collector for Scrape {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        for family in &self.families {
            let mut metric =
                encoder.encode_descriptor(family.name, family.help, None, family.kind)?;
            for (labels, value) in &family.samples {
                let sample = metric.encode_family(labels)?;
                match (family.kind, value) {
                    (MetricType::Counter, Value::Count(n)) => {
                        ConstCounter::new(*n).encode(sample)?
                    }
                    (MetricType::Counter, Value::Measure(x)) => {
                        ConstCounter::new(*x).encode(sample)?
                    }
                    (_, Value::Count(n)) => ConstGauge::new(*n).encode(sample)?,
                    (_, Value::Measure(x)) => ConstGauge::new(*x).encode(sample)?,
                    (
                        _,
                        Value::Histogram {
                            bounds,
                            counts,
                            sum,
                        },
                    ) => {
                        let mut sample = sample;
                        let buckets: Vec<(f64, u64)> = bounds
                            .iter()
                            .copied()
                            .chain(std::iter::once(f64::INFINITY))
                            .zip(counts.iter().copied())
                            .collect();
                        let count = counts.iter().sum();
                        sample.encode_histogram::<prometheus_client::encoding::NoLabelSet>(
                            *sum, count, &buckets, None,
                        )?
                    }
                }
            }
        }
        Ok(())
    }
}

impl Scrape {
    /// The scrape in the Prometheus text format.
    pub fn encode_text(self) -> String {
        let mut registry = Registry::default();
        registry.register_collector(Box::new(self));
        let mut out = String::new();
        // Writing to a String cannot fail; the encoder fails only when its
        // writer does.
        let _ = prometheus_client::encoding::prometheus_text::encode(&mut out, &registry);
        out
    }
}

/// Seconds from milliseconds.
fn seconds(ms: u64) -> Value {
    Value::Measure(ms as f64 / 1000.0)
}

/// Gathers every metric and writes them out.
pub async fn render(state: &AppState) -> Result<String, super::error::ApiError> {
    Ok(gather(state).await?.encode_text())
}

/// Gathers every figure of one scrape.
pub async fn gather(state: &AppState) -> Result<Scrape, super::error::ApiError> {
    let snap = views::center(state, true).await?;
    let now_ms = crate::clock::now_ms();
    let mut out = Scrape::default();
    let families = &mut out.families;

    let mut ended = Family::new(
        CALLS_ENDED,
        "Ended calls by terminal reason.",
        MetricType::Counter,
    );
    for outcome in OUTCOMES {
        let n = snap.ended.get(outcome).copied().unwrap_or(0);
        ended = ended.sample(vec![("outcome", outcome.into())], Value::Count(n));
    }
    families.push(ended);
    families.push(
        Family::new(CALLS_LIVE, "Live calls.", MetricType::Gauge)
            .sample(vec![], Value::Count(snap.calls.len() as u64)),
    );

    let mut depth = Family::new(QUEUE_DEPTH, "Calls waiting per queue.", MetricType::Gauge);
    let mut longest = Family::new(
        QUEUE_LONGEST_WAIT_SECONDS,
        "Longest current wait per queue.",
        MetricType::Gauge,
    );
    let mut waits = Family::new(
        QUEUE_WAIT_SECONDS,
        "Wait of answered queue calls.",
        MetricType::Histogram,
    );
    for q in &snap.queues {
        let queue = || vec![("queue", q.queue.0.clone())];
        depth = depth.sample(queue(), Value::Count(q.waiting.len() as u64));
        let longest_ms = q.wait_ms.iter().copied().max().unwrap_or(0);
        longest = longest.sample(queue(), seconds(longest_ms));
        let f = &q.answered;
        waits = waits.sample(
            queue(),
            Value::Histogram {
                bounds: WAIT_BUCKETS_S.to_vec(),
                counts: f.wait_buckets[..=WAIT_BUCKETS_S.len()].to_vec(),
                sum: f.wait_sum_ms as f64 / 1000.0,
            },
        );
    }
    families.extend([depth, longest, waits]);
    let calls = state
        .registry
        .send(GetCallMetrics)
        .await
        .map_err(|e| super::error::ApiError::unavailable(format!("contact center: {e}")))?;
    families.extend(call_families(&calls));

    let mut restored = Family::new(
        RESTART_CALLS_RESTORED,
        "Live calls restored at this start and reconciled with the PBX.",
        MetricType::Gauge,
    );
    let mut adopted = Family::new(
        RESTART_CALLS_ADOPTED,
        "Restored calls the PBX still had (carried on).",
        MetricType::Gauge,
    );
    if let Some(r) = snap.restart {
        restored = restored.sample(vec![], Value::Count(r.calls_restored));
        adopted = adopted.sample(vec![], Value::Count(r.calls_adopted));
    }
    families.extend([restored, adopted]);

    let mut agents = Family::new(AGENTS, "Agents per state.", MetricType::Gauge);
    for s in AGENT_STATES {
        let n = snap.agents.iter().filter(|a| a.state.name() == s).count();
        agents = agents.sample(vec![("state", s.into())], Value::Count(n as u64));
    }
    families.push(agents);

    if let Ok(stats) = state.storage.outbox().stats(now_ms) {
        families.push(
            Family::new(OUTBOX_DEPTH, "Pending outbox records.", MetricType::Gauge)
                .sample(vec![], Value::Count(stats.depth)),
        );
        families.push(
            Family::new(
                OUTBOX_OLDEST_AGE_SECONDS,
                "Age of the oldest pending record.",
                MetricType::Gauge,
            )
            .sample(vec![], seconds(stats.oldest_age_ms)),
        );
        families.push(
            Family::new(OUTBOX_DEAD_LETTERS, "Dead letters.", MetricType::Gauge)
                .sample(vec![], Value::Count(stats.dead_letters)),
        );
    }

    let health = storage_health::to_json(&state.storage.health());
    for figure in storage_health::FIGURES {
        let mut family = Family::new(figure.metric, figure.help, MetricType::Gauge);
        if let Some(n) = figure.read(&health) {
            let value = match figure.unit {
                Unit::Millis => seconds(n),
                Unit::Count | Unit::Bytes => Value::Count(n),
            };
            family = family.sample(vec![], value);
        }
        families.push(family);
    }

    families.push(
        Family::new(
            HA_ROLE,
            "1 for this box's role in an HA pair.",
            MetricType::Gauge,
        )
        .sample(
            vec![("role", crate::ops::ha_role::current().as_str().into())],
            Value::Count(1),
        ),
    );

    if let Some(owner) = &state.ari_owner {
        let taken = u64::from(owner.taken_over_since_ms().is_some());
        families.push(
            Family::new(
                ARI_APP_TAKEN_OVER,
                "1 while another client owns the ARI application.",
                MetricType::Gauge,
            )
            .sample(vec![], Value::Count(taken)),
        );
        families.push(
            Family::new(
                ARI_APP_TAKEOVERS,
                "Times another client took the ARI application over.",
                MetricType::Counter,
            )
            .sample(vec![], Value::Count(owner.takeovers())),
        );
    }

    if let Some(sync) = &state.sync {
        if let Ok(s) = sync.send(GetSyncStatus).await {
            let mut circuit = Family::new(
                CRM_CIRCUIT,
                "CRM circuit breaker state (1 = current).",
                MetricType::Gauge,
            );
            for (name, c) in [
                ("closed", Circuit::Closed),
                ("open", Circuit::Open),
                ("half_open", Circuit::HalfOpen),
            ] {
                let v = u64::from(s.circuit == Some(c));
                circuit = circuit.sample(vec![("state", name.into())], Value::Count(v));
            }
            families.push(circuit);
            families.push(
                Family::new(
                    CRM_DELIVERED,
                    "Records the CRM confirmed.",
                    MetricType::Counter,
                )
                .sample(vec![], Value::Count(s.delivered)),
            );
            families.push(
                Family::new(
                    CRM_DELIVERY_LATENCY_SECONDS,
                    "Created to delivered latency.",
                    MetricType::Gauge,
                )
                .sample(
                    vec![("quantile", "0.5".into())],
                    seconds(s.delivery_latency_p50_ms),
                )
                .sample(
                    vec![("quantile", "0.99".into())],
                    seconds(s.delivery_latency_p99_ms),
                ),
            );
        }
    }
    Ok(out)
}

/// The families of the per-queue call figures: waits, handle time, ended
/// calls by reason, each queue's threshold bucket and the service level's
/// three counts.
pub fn call_families(calls: &CallMetrics) -> [Family; 7] {
    let mut wait = Family::new(
        QUEUE_CALL_WAIT_SECONDS,
        "Waits in the queue to answer, abandon or time-out.",
        MetricType::Histogram,
    );
    let mut handle = Family::new(
        QUEUE_HANDLE_SECONDS,
        "Handle time (talk, hold, wrap-up) of calls answered from the queue.",
        MetricType::Histogram,
    );
    let mut ended = Family::new(
        QUEUE_CALLS_ENDED,
        "Ended calls by last queue and terminal reason.",
        MetricType::Counter,
    );
    let mut threshold = Family::new(
        QUEUE_SERVICE_LEVEL_THRESHOLD_SECONDS,
        "Service-level threshold of the queue; bucket names its wait bucket's le.",
        MetricType::Gauge,
    );
    let mut offered = Family::new(
        QUEUE_CALLS_OFFERED,
        "Queue stints of ended calls (the service level's offered).",
        MetricType::Counter,
    );
    let mut within = Family::new(
        QUEUE_CALLS_ANSWERED_WITHIN_THRESHOLD,
        "Of them, answered within the queue's service-level threshold.",
        MetricType::Counter,
    );
    let mut short = Family::new(
        QUEUE_CALLS_SHORT_ABANDONED,
        "Of them, abandoned within the short-abandon threshold (left out of the service level).",
        MetricType::Counter,
    );
    let histogram = |h: &Histogram| Value::Histogram {
        bounds: h.bounds.clone(),
        counts: h.counts.clone(),
        sum: h.sum,
    };
    for (queue, f) in &calls.queues {
        let q = || vec![("queue", queue.0.clone())];
        wait = wait.sample(q(), histogram(&f.wait));
        handle = handle.sample(q(), histogram(&f.handle));
        for outcome in OUTCOMES {
            let n = f.ended.get(outcome).copied().unwrap_or(0);
            let labels = vec![("queue", queue.0.clone()), ("outcome", outcome.into())];
            ended = ended.sample(labels, Value::Count(n));
        }
        let t = f.service_level_ms as f64 / 1000.0;
        // The bucket at the threshold, or below it when a reload changed
        // the threshold since the queue's buckets were made.
        let bucket = f
            .wait
            .bounds
            .iter()
            .copied()
            .filter(|b| *b <= t)
            .fold(t.min(f.wait.bounds.first().copied().unwrap_or(t)), f64::max);
        let labels = vec![("queue", queue.0.clone()), ("bucket", le_label(bucket))];
        threshold = threshold.sample(labels, Value::Measure(t));
        let sl = &f.service_level;
        offered = offered.sample(q(), Value::Count(sl.offered));
        within = within.sample(q(), Value::Count(sl.answered_within_threshold));
        short = short.sample(q(), Value::Count(sl.short_abandoned));
    }
    [wait, handle, ended, threshold, offered, within, short]
}

/// A bucket bound as `prometheus-client` writes it in `le` (`20`, `0.5`).
fn le_label(bound: f64) -> String {
    let mut out = String::new();
    // Writing to a String cannot fail.
    let _ = std::fmt::Write::write_fmt(&mut out, format_args!("{bound}"));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The exposition users scrape keeps its shape: counters end in
    /// `_total` on every line, integer gauges have no fraction, label
    /// values are escaped, and a histogram's buckets are cumulative with
    /// `+Inf`, `_sum` and `_count`.
    #[test]
    fn exposition_keeps_names_types_and_buckets() {
        let scrape = Scrape {
            families: vec![
                Family::new(CALLS_ENDED, "Ended calls.", MetricType::Counter)
                    .sample(vec![("outcome", "completed".into())], Value::Count(3)),
                Family::new(AGENTS, "Agents per state.", MetricType::Gauge)
                    .sample(vec![("state", "ready".into())], Value::Count(2)),
                Family::new(QUEUE_DEPTH, "Depth.", MetricType::Gauge)
                    .sample(vec![("queue", "a\"b\\c\nd".into())], Value::Count(0)),
                Family::new(QUEUE_WAIT_SECONDS, "Waits.", MetricType::Histogram).sample(
                    vec![("queue", "sales".into())],
                    Value::Histogram {
                        bounds: vec![1.0, 5.0],
                        counts: vec![1, 2, 4],
                        sum: 12.5,
                    },
                ),
                Family::new(CALLS_LIVE, "Live.", MetricType::Gauge),
            ],
        };
        let text = scrape.encode_text();
        for line in [
            "# HELP edgecc_calls_ended_total Ended calls.",
            "# TYPE edgecc_calls_ended_total counter",
            "edgecc_calls_ended_total{outcome=\"completed\"} 3",
            "# TYPE edgecc_agents gauge",
            "edgecc_agents{state=\"ready\"} 2",
            "edgecc_queue_depth{queue=\"a\\\"b\\\\c\\nd\"} 0",
            "# TYPE edgecc_queue_wait_seconds histogram",
            "edgecc_queue_wait_seconds_bucket{queue=\"sales\",le=\"1\"} 1",
            "edgecc_queue_wait_seconds_bucket{queue=\"sales\",le=\"5\"} 3",
            "edgecc_queue_wait_seconds_bucket{queue=\"sales\",le=\"+Inf\"} 7",
            "edgecc_queue_wait_seconds_sum{queue=\"sales\"} 12.5",
            "edgecc_queue_wait_seconds_count{queue=\"sales\"} 7",
            "# TYPE edgecc_calls_live gauge",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "{line:?} missing from:\n{text}"
            );
        }
        assert!(!text.contains("_total_total"), "{text}");
        assert!(!text.contains("# EOF"), "Prometheus 0.0.4, not OpenMetrics");
    }
}
