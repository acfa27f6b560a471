//! The sync worker: drains the outbox into a CRM adapter.
//!
//! - **Order.** The outbox hands out at most one record per interaction at a
//!   time, each the oldest pending one of its interaction, so one
//!   interaction's writes reach the CRM in the order they happened, while
//!   up to `concurrency` requests run in parallel across interactions. The
//!   outbox also interleaves the newest interactions with the oldest backlog,
//!   so a recovering CRM shows today's calls at once.
//! - **Failures.** [`Outcome::Retry`] puts the record back at the head of its
//!   interaction with a delay: the CRM's `Retry-After` when it sent one,
//!   else exponential backoff with full jitter
//!   (`random(0, min(cap, base · 2^attempt))`). A 429 also pauses the whole
//!   worker until its `Retry-After`: the CRM asked us to slow down, not one
//!   record.
//! - **Circuit breaker.** `breaker_failures` consecutive CRM-down outcomes
//!   open it: nothing is taken from the outbox (records keep no new
//!   attempts, and an unreachable CRM costs one probe per
//!   `breaker_probe_interval_ms`). When the interval passes one record is
//!   sent as a probe (half-open); success closes the breaker and the worker
//!   drains at full concurrency again, failure re-opens it.
//! - **Dead letters.** [`Outcome::Permanent`] moves the record to the dead
//!   letters with the status and the CRM's answer. The outbox keeps that
//!   interaction's later records held behind it until an operator
//!   re-queues it (`edgecc outbox dead requeue`), so a dead create never
//!   lets its updates overtake it; other interactions keep flowing.
//! - **Lifetime.** Records older than `record_lifetime_ms` are parked in the
//!   dead letters with an error-level log (an alarm), never dropped.
//! - **Crash.** Acks are durable before they are counted; a record in flight
//!   at a crash is pending again after restart and is re-sent with the same
//!   idempotency key.

use std::collections::VecDeque;
use std::rc::Rc;
use std::time::Duration;

use actix::prelude::*;
use edgecc_actors::rng::SplitMix64;
use edgecc_actors::SharedClock;
use edgecc_storage::{Outbox, Record, StateTree};
use serde::{Deserialize, Serialize};
use tracing::{error, info, warn};

use super::{CrmAdapter, Outcome};
use crate::net::SettingError;

/// How often the worker looks for records that became ready (retry times
/// passing, appends it was not told about), in ms.
pub const POLL_INTERVAL_MS: u64 = 100;
/// How often expired records are parked, in ms.
pub const PARK_INTERVAL_MS: u64 = 60_000;
/// Most concurrent CRM requests any config may ask for.
pub const CONCURRENCY_MAX: usize = 256;
/// Delivery latencies kept for the p50/p99 figures (a ring).
const LATENCIES_KEPT: usize = 4096;

/// Sync worker settings (`[crm]` in the config).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SyncConfig {
    /// Requests in flight at once, across interactions.
    pub concurrency: usize,
    /// First retry delay bound, in ms (doubled per attempt, then jittered).
    pub backoff_base_ms: u64,
    /// Largest retry delay bound, in ms.
    pub backoff_cap_ms: u64,
    /// Consecutive CRM-down outcomes that open the circuit breaker.
    pub breaker_failures: u32,
    /// While open, one probe per this many ms.
    pub breaker_probe_interval_ms: u64,
    /// Records older than this are parked in the dead letters (alarm).
    pub record_lifetime_ms: u64,
}

impl Default for SyncConfig {
    fn default() -> Self {
        SyncConfig {
            concurrency: 16,
            backoff_base_ms: 500,
            backoff_cap_ms: 60_000,
            breaker_failures: 5,
            breaker_probe_interval_ms: 5_000,
            record_lifetime_ms: 7 * 24 * 3600 * 1000,
        }
    }
}

impl SyncConfig {
    /// Checks ranges; the error names the key (under `crm.`).
    pub fn validate(&self) -> Result<(), SettingError> {
        let bad = |k: &str, m: String| Err(SettingError::new(&format!("crm.{k}"), m));
        if self.concurrency == 0 || self.concurrency > CONCURRENCY_MAX {
            return bad(
                "concurrency",
                format!(
                    "{} is out of range: use 1 to {CONCURRENCY_MAX}",
                    self.concurrency
                ),
            );
        }
        if self.backoff_base_ms == 0 || self.backoff_base_ms > self.backoff_cap_ms {
            return bad(
                "backoff_base_ms",
                format!(
                    "{} must be at least 1 and at most crm.backoff_cap_ms ({})",
                    self.backoff_base_ms, self.backoff_cap_ms
                ),
            );
        }
        if self.breaker_failures == 0 {
            return bad("breaker_failures", "must be at least 1".to_string());
        }
        if self.breaker_probe_interval_ms < 10 {
            return bad(
                "breaker_probe_interval_ms",
                format!(
                    "{} is too short: use at least 10",
                    self.breaker_probe_interval_ms
                ),
            );
        }
        if self.record_lifetime_ms < 60_000 {
            return bad(
                "record_lifetime_ms",
                format!("{} is under a minute", self.record_lifetime_ms),
            );
        }
        Ok(())
    }
}

/// The circuit breaker's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Circuit {
    /// The CRM answers: deliver at full concurrency.
    Closed,
    /// The CRM is down: wait for the probe time.
    Open,
    /// One probe is allowed through.
    HalfOpen,
}

/// What the worker has done, for status lines, `/metrics` and tests.
#[derive(Debug, Clone, Default, Serialize)]
pub struct SyncStatus {
    /// The breaker, as a word (`closed`, `open`, `half_open`).
    pub circuit: Option<Circuit>,
    /// Records the CRM confirmed.
    pub delivered: u64,
    /// Delivery attempts that will be retried.
    pub retried: u64,
    /// Records moved to the dead letters by a permanent refusal.
    pub dead_lettered: u64,
    /// Records parked for exceeding their lifetime.
    pub parked: u64,
    /// Requests in flight now.
    pub in_flight: usize,
    /// Times the breaker opened.
    pub breaker_opened: u64,
    /// The last failure, for the operator.
    pub last_error: Option<String>,
    /// p50 of created→delivered, in ms, over the last deliveries.
    pub delivery_latency_p50_ms: u64,
    /// p99 of created→delivered, in ms, over the last deliveries.
    pub delivery_latency_p99_ms: u64,
}

/// Look for ready records now (sent by whoever appended).
#[derive(Message)]
#[rtype(result = "()")]
pub struct Kick;

/// Ask for the worker's status.
#[derive(Message)]
#[rtype(result = "SyncStatus")]
pub struct GetSyncStatus;

/// The sync worker actor.
pub struct SyncWorker {
    /// Where records come from and are settled.
    outbox: Outbox,
    /// Where they go.
    adapter: Rc<dyn CrmAdapter>,
    /// Wall-clock ms (pausable in tests).
    clock: SharedClock,
    /// Limits and timings.
    config: SyncConfig,
    /// CRM links of delivered creates, by interaction key (for "Open
    /// interaction"); `None` when not wanted.
    links: Option<StateTree>,
    /// Requests in flight.
    in_flight: usize,
    /// Breaker state.
    circuit: Circuit,
    /// Consecutive CRM-down outcomes while closed.
    failures: u32,
    /// Wall ms before which nothing is sent (breaker open, or a 429).
    paused_until_ms: u64,
    /// Wall ms of the last expiry sweep.
    parked_at_ms: u64,
    /// Jitter source.
    rng: SplitMix64,
    /// Counters.
    status: SyncStatus,
    /// Recent created→delivered latencies in ms.
    latencies: VecDeque<u64>,
}

/// How long a record waits before its next attempt: its backoff, or the
/// CRM's `Retry-After` when that is longer. Retry-After lengthens the
/// backoff, never shortens it (`Retry-After: 0` must not become a tight
/// loop).
fn retry_delay_ms(retry_after: Option<Duration>, backoff_ms: u64) -> u64 {
    match retry_after {
        Some(d) => u64::try_from(d.as_millis())
            .unwrap_or(u64::MAX)
            .max(backoff_ms),
        None => backoff_ms,
    }
}

impl SyncWorker {
    /// A worker for `outbox` into `adapter`.
    pub fn new(
        outbox: Outbox,
        adapter: Rc<dyn CrmAdapter>,
        clock: SharedClock,
        config: SyncConfig,
        links: Option<StateTree>,
        seed: u64,
    ) -> Self {
        let now = clock.now_ms();
        SyncWorker {
            outbox,
            adapter,
            clock,
            config,
            links,
            in_flight: 0,
            circuit: Circuit::Closed,
            failures: 0,
            paused_until_ms: 0,
            parked_at_ms: now,
            rng: SplitMix64::new(seed),
            status: SyncStatus::default(),
            latencies: VecDeque::with_capacity(LATENCIES_KEPT),
        }
    }

    /// The retry delay for a record that failed its `attempt`-th time:
    /// full jitter over an exponential bound.
    fn backoff_ms(&mut self, attempt: u32) -> u64 {
        let exp = self
            .config
            .backoff_base_ms
            .saturating_mul(1u64 << attempt.min(32));
        let bound = exp.min(self.config.backoff_cap_ms).max(1);
        self.rng.below(bound + 1)
    }

    /// Starts as many requests as the breaker and concurrency allow.
    fn pump(&mut self, ctx: &mut Context<Self>) {
        let now = self.clock.now_ms();
        if now >= self.parked_at_ms.saturating_add(PARK_INTERVAL_MS) {
            self.parked_at_ms = now;
            self.park_expired(ctx, now);
        }
        if now < self.paused_until_ms {
            return;
        }
        let room = match self.circuit {
            Circuit::Closed => self.config.concurrency.saturating_sub(self.in_flight),
            Circuit::Open => {
                self.circuit = Circuit::HalfOpen;
                info!(
                    adapter = self.adapter.name(),
                    "CRM circuit half-open: probing."
                );
                usize::from(self.in_flight == 0)
            }
            Circuit::HalfOpen => usize::from(self.in_flight == 0),
        };
        if room == 0 {
            return;
        }
        let batch = if self.circuit == Circuit::Closed {
            self.adapter.batch_max().max(1)
        } else {
            1
        };
        let records = self.outbox.take_ready(room * batch, now);
        if records.is_empty() {
            return;
        }
        let mut records = records.into_iter().peekable();
        while records.peek().is_some() {
            let chunk: Vec<Record> = records.by_ref().take(batch).collect();
            self.in_flight += 1;
            let adapter = Rc::clone(&self.adapter);
            let fut = async move {
                let outcomes = adapter.deliver(chunk.clone()).await;
                let mut results = Vec::with_capacity(chunk.len());
                let mut outcomes = outcomes.into_iter();
                for record in chunk {
                    let outcome = outcomes.next().unwrap_or_else(|| Outcome::Retry {
                        reason: "adapter gave no outcome for this record".to_string(),
                        retry_after: None,
                        crm_down: false,
                    });
                    results.push((record, outcome));
                }
                results
            };
            ctx.spawn(fut.into_actor(self).map(|results, act, ctx| {
                act.in_flight = act.in_flight.saturating_sub(1);
                act.settle(ctx, results);
            }));
        }
    }

    /// Records the outcomes durably and updates the breaker.
    fn settle(&mut self, ctx: &mut Context<Self>, results: Vec<(Record, Outcome)>) {
        let now = self.clock.now_ms();
        for (record, outcome) in results {
            match outcome {
                Outcome::Delivered { link } => {
                    self.on_success();
                    self.status.delivered += 1;
                    self.note_latency(now.saturating_sub(record.created_at_ms));
                    let outbox = self.outbox.clone();
                    let links = self.links.clone();
                    let seq = record.seq;
                    let key = record.interaction_key.clone();
                    let is_create = record.kind == edgecc_storage::RecordKind::InteractionCreate;
                    ctx.spawn(
                        async move {
                            if let Err(e) = outbox.ack(seq).await {
                                error!(seq, error = %e, "Outbox ack failed; the record will be re-sent.");
                            }
                            // Kept even without a link (an empty one), so the
                            // desktop can tell "delivered" from "not sent yet".
                            if let (Some(links), true) = (links, is_create) {
                                let link = link.unwrap_or_default();
                                if let Err(e) = links.put(key.as_bytes(), link.as_bytes()).await {
                                    warn!(error = %e, "Could not keep the CRM link.");
                                }
                            }
                        }
                        .into_actor(self),
                    );
                }
                Outcome::Retry {
                    reason,
                    retry_after,
                    crm_down,
                } => {
                    self.status.retried += 1;
                    let delay_ms = retry_delay_ms(retry_after, self.backoff_ms(record.attempts));
                    if let Some(d) = retry_after {
                        let until = now.saturating_add(u64::try_from(d.as_millis()).unwrap_or(0));
                        if until > self.paused_until_ms {
                            self.paused_until_ms = until;
                            warn!(
                                retry_after_ms = d.as_millis() as u64,
                                "CRM asked to slow down; pausing."
                            );
                        }
                    }
                    if crm_down {
                        self.on_crm_down(now, &reason);
                    }
                    self.status.last_error = Some(reason.clone());
                    let outbox = self.outbox.clone();
                    let seq = record.seq;
                    let not_before = now.saturating_add(delay_ms);
                    ctx.spawn(
                        async move {
                            if let Err(e) = outbox.retry(seq, &reason, not_before).await {
                                error!(seq, error = %e, "Outbox retry failed.");
                            }
                        }
                        .into_actor(self),
                    );
                }
                Outcome::Permanent { status, reason } => {
                    self.on_success();
                    self.status.dead_lettered += 1;
                    let why = format!("CRM refused with HTTP {status}: {reason}");
                    warn!(
                        seq = record.seq,
                        correlation_id = %record.correlation_id,
                        status,
                        "CRM refused a record for good; moved to the dead letters."
                    );
                    self.status.last_error = Some(why.clone());
                    let outbox = self.outbox.clone();
                    let seq = record.seq;
                    ctx.spawn(
                        async move {
                            if let Err(e) = outbox.dead_letter(seq, &why).await {
                                error!(seq, error = %e, "Outbox dead-letter failed.");
                            }
                        }
                        .into_actor(self),
                    );
                }
            }
        }
        ctx.notify(Kick);
    }

    /// A request the CRM answered: the breaker closes, failures reset.
    fn on_success(&mut self) {
        if self.circuit != Circuit::Closed {
            info!(
                adapter = self.adapter.name(),
                "CRM circuit closed: draining."
            );
        }
        self.circuit = Circuit::Closed;
        self.failures = 0;
    }

    /// The CRM looks down: count, and open the breaker at the threshold.
    fn on_crm_down(&mut self, now: u64, reason: &str) {
        self.failures = self.failures.saturating_add(1);
        let open = match self.circuit {
            Circuit::HalfOpen | Circuit::Open => true,
            Circuit::Closed => self.failures >= self.config.breaker_failures,
        };
        if open {
            if self.circuit == Circuit::Closed {
                self.status.breaker_opened += 1;
                warn!(
                    adapter = self.adapter.name(),
                    failures = self.failures,
                    reason,
                    "CRM circuit open: the CRM looks down; calls go on, records wait."
                );
            }
            self.circuit = Circuit::Open;
            self.paused_until_ms = self
                .paused_until_ms
                .max(now.saturating_add(self.config.breaker_probe_interval_ms));
        }
    }

    /// Parks records past their lifetime in the dead letters.
    fn park_expired(&mut self, ctx: &mut Context<Self>, now: u64) {
        let outbox = self.outbox.clone();
        let lifetime = self.config.record_lifetime_ms;
        ctx.spawn(
            async move { outbox.park_expired(now, lifetime).await }
                .into_actor(self)
                .map(|result, act, _| match result {
                    Ok(0) => {}
                    Ok(n) => {
                        act.status.parked += n as u64;
                        error!(
                            parked = n,
                            lifetime_ms = act.config.record_lifetime_ms,
                            "ALARM: CRM records exceeded their lifetime and were parked in the dead letters."
                        );
                    }
                    Err(e) => error!(error = %e, "Parking expired records failed."),
                }),
        );
    }

    /// Keeps a delivery latency for the percentiles.
    fn note_latency(&mut self, ms: u64) {
        if self.latencies.len() == LATENCIES_KEPT {
            self.latencies.pop_front();
        }
        self.latencies.push_back(ms);
    }
}

impl Actor for SyncWorker {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        info!(
            adapter = self.adapter.name(),
            concurrency = self.config.concurrency,
            "CRM sync started."
        );
        ctx.run_interval(Duration::from_millis(POLL_INTERVAL_MS), |act, ctx| {
            act.pump(ctx)
        });
        self.pump(ctx);
    }
}

impl Handler<Kick> for SyncWorker {
    type Result = ();

    fn handle(&mut self, _: Kick, ctx: &mut Self::Context) {
        self.pump(ctx);
    }
}

impl Handler<GetSyncStatus> for SyncWorker {
    type Result = MessageResult<GetSyncStatus>;

    fn handle(&mut self, _: GetSyncStatus, _: &mut Self::Context) -> Self::Result {
        let mut status = self.status.clone();
        status.circuit = Some(self.circuit);
        status.in_flight = self.in_flight;
        let mut sorted: Vec<u64> = self.latencies.iter().copied().collect();
        sorted.sort_unstable();
        let pick = |q: f64| -> u64 {
            if sorted.is_empty() {
                0
            } else {
                sorted[((sorted.len() - 1) as f64 * q).round() as usize]
            }
        };
        status.delivery_latency_p50_ms = pick(0.50);
        status.delivery_latency_p99_ms = pick(0.99);
        MessageResult(status)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Retry-After only ever lengthens the wait.
    #[test]
    fn retry_after_lengthens_never_shortens() {
        assert_eq!(retry_delay_ms(None, 800), 800);
        assert_eq!(retry_delay_ms(Some(Duration::ZERO), 800), 800);
        assert_eq!(retry_delay_ms(Some(Duration::from_secs(7)), 800), 7_000);
        assert_eq!(retry_delay_ms(Some(Duration::from_millis(300)), 800), 800);
    }
}
