//! Talking to systemd (`Type=notify`): `READY=1` once edgecc serves,
//! `WATCHDOG=1` only after a health check of the critical actors passed,
//! `STATUS=` lines with the outbox depth and the PBX/CRM link state, and
//! `STOPPING=1` on shutdown. Pure Rust (the `sd-notify` crate); everything
//! is a no-op when `$NOTIFY_SOCKET` is not set.
//!
//! The health check runs on its own thread, so it can still notice (and
//! log) a wedged actor system; but it sends `WATCHDOG=1` only when every
//! ping came back in time, so a wedged system stops the pings and systemd
//! restarts it. It pings the [`Registry`] (and, through a snapshot with
//! queues, every queue actor), the PBX gate, the CRM sync worker, and makes
//! one durable write through the storage writer.
//!
//! A status line is one state word then `key=value` pairs, for people
//! (`systemctl status edgecc`) and scripts alike:
//!
//! ```text
//! running outbox_depth=12 dead_letters=0 pbx=up crm=closed role=standalone
//! degraded failed=registry outbox_depth=12 dead_letters=0 pbx=unknown crm=unknown role=active
//! ```
//!
//! `role=` is the box's role in an HA pair ([`crate::ops::ha_role`]).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use actix::Addr;
use edgecc_actors::registry::{Registry, Snapshot};
use edgecc_storage::{Outbox, StateTree};
use sd_notify::NotifyState;
use tracing::{debug, error, info, warn};

use crate::crm::sync::{GetSyncStatus, SyncWorker};
use crate::pbx::gate::{GetGateStatus, PbxGate};

/// How often status lines are refreshed when systemd runs no watchdog.
pub const STATUS_INTERVAL: Duration = Duration::from_secs(10);
/// Longest a ping may take, whatever the watchdog interval: an actor that
/// does not answer a snapshot within this is wedged, not slow.
pub const PING_TIMEOUT_MAX: Duration = Duration::from_secs(5);

/// Whether systemd listens (`$NOTIFY_SOCKET` is set).
pub fn enabled() -> bool {
    std::env::var_os("NOTIFY_SOCKET").is_some()
}

/// Sends states to systemd; a failure is logged, never fatal.
pub fn notify(states: &[NotifyState<'_>]) {
    if !enabled() {
        return;
    }
    if let Err(e) = sd_notify::notify(states) {
        warn!(error = %e, "Cannot notify systemd.");
    }
}

/// `READY=1` with a first status line.
pub fn ready(status: &str) {
    notify(&[NotifyState::Ready, NotifyState::Status(status)]);
}

/// `STOPPING=1` with a status line.
pub fn stopping(status: &str) {
    notify(&[NotifyState::Stopping, NotifyState::Status(status)]);
}

/// How often the health check runs and how long each ping may take:
/// three checks per watchdog interval, so one slow check never gets the
/// service killed but a wedge that lasts gets it restarted.
pub fn check_timing(watchdog: Option<Duration>) -> (Duration, Duration) {
    match watchdog {
        Some(w) => {
            let every = (w / 3).max(Duration::from_millis(100));
            (every, (every / 2).min(PING_TIMEOUT_MAX))
        }
        None => (STATUS_INTERVAL, PING_TIMEOUT_MAX),
    }
}

/// What the health check pings.
#[derive(Clone)]
pub struct HealthTargets {
    /// The contact center's facade.
    pub registry: Addr<Registry>,
    /// The PBX gate (link state).
    pub gate: Addr<PbxGate>,
    /// The CRM sync worker, when a CRM is configured.
    pub sync: Option<Addr<SyncWorker>>,
    /// The outbox (depth, dead letters).
    pub outbox: Outbox,
    /// The tree the probe writes to
    /// ([`crate::system::storage::Tree::WatchdogProbe`]).
    pub probe: StateTree,
}

/// One health check's result.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Health {
    /// Names of the targets that did not answer in time (or failed).
    pub failed: Vec<&'static str>,
    /// Pending outbox records, when known.
    pub outbox_depth: Option<u64>,
    /// Dead letters, when known.
    pub dead_letters: Option<u64>,
    /// `starting`, `up`, `down`, or `unknown`.
    pub pbx: &'static str,
    /// `none` (no CRM), `closed`, `open`, `half_open`, or `unknown`.
    pub crm: &'static str,
    /// `standalone` or `active` ([`crate::ops::ha_role`]); empty: not said.
    pub role: &'static str,
}

impl Health {
    /// Whether every ping came back.
    pub fn ok(&self) -> bool {
        self.failed.is_empty()
    }

    /// The `STATUS=` line (see the module header).
    pub fn status_line(&self) -> String {
        let mut s = if self.ok() {
            "running".to_string()
        } else {
            format!("degraded failed={}", self.failed.join(","))
        };
        let n = |v: Option<u64>| v.map_or("unknown".to_string(), |v| v.to_string());
        s.push_str(&format!(
            " outbox_depth={} dead_letters={} pbx={} crm={}",
            n(self.outbox_depth),
            n(self.dead_letters),
            self.pbx,
            self.crm
        ));
        if !self.role.is_empty() {
            s.push_str(&format!(" role={}", self.role));
        }
        s
    }
}

/// Pings every target, each within `timeout`.
pub async fn check(targets: &HealthTargets, timeout: Duration) -> Health {
    let mut health = Health {
        pbx: "unknown",
        crm: "unknown",
        role: crate::ops::ha_role::current().as_str(),
        ..Health::default()
    };
    match tokio::time::timeout(
        timeout,
        targets.registry.send(Snapshot { with_queues: true }),
    )
    .await
    {
        Ok(Ok(_)) => {}
        _ => health.failed.push("registry"),
    }
    match tokio::time::timeout(timeout, targets.gate.send(GetGateStatus)).await {
        Ok(Ok(s)) => health.pbx = s.link.as_str(),
        _ => health.failed.push("pbx_gate"),
    }
    match &targets.sync {
        None => health.crm = "none",
        Some(sync) => match tokio::time::timeout(timeout, sync.send(GetSyncStatus)).await {
            Ok(Ok(s)) => {
                health.crm = match s.circuit {
                    Some(crate::crm::sync::Circuit::Closed) => "closed",
                    Some(crate::crm::sync::Circuit::Open) => "open",
                    Some(crate::crm::sync::Circuit::HalfOpen) => "half_open",
                    None => "unknown",
                }
            }
            _ => health.failed.push("crm_sync"),
        },
    }
    let now = crate::clock::now_ms().to_be_bytes();
    match tokio::time::timeout(timeout, targets.probe.put(b"probe", &now)).await {
        Ok(Ok(())) => {}
        _ => health.failed.push("storage"),
    }
    // Reading the figures does not go through the writer: it cannot hang.
    if let Ok(stats) = targets.outbox.stats(crate::clock::now_ms()) {
        health.outbox_depth = Some(stats.depth);
        health.dead_letters = Some(stats.dead_letters);
    }
    health
}

/// The health-check thread; stops (and is joined) on [`Watchdog::stop`].
pub struct Watchdog {
    /// Tells the thread to end.
    stop: Arc<AtomicBool>,
    /// The thread.
    thread: Option<JoinHandle<()>>,
}

impl Watchdog {
    /// Starts the health-check thread when systemd listens. `watchdog` is
    /// `$WATCHDOG_USEC` (see [`sd_notify::watchdog_enabled`]).
    pub fn start(targets: HealthTargets, watchdog: Option<Duration>) -> Option<Watchdog> {
        if !enabled() {
            return None;
        }
        let (every, timeout) = check_timing(watchdog);
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build();
        let runtime = match runtime {
            Ok(r) => r,
            Err(e) => {
                error!(error = %e, "Cannot start the health-check runtime; no watchdog pings: systemd will restart us.");
                return None;
            }
        };
        let thread = std::thread::Builder::new()
            .name("edgecc-watchdog".into())
            .spawn(move || {
                runtime.block_on(run(targets, watchdog.is_some(), every, timeout, flag));
            });
        match thread {
            Ok(t) => {
                info!(
                    watchdog_ms = watchdog.map(|w| w.as_millis() as u64),
                    check_every_ms = every.as_millis() as u64,
                    ping_timeout_ms = timeout.as_millis() as u64,
                    "Health check started."
                );
                Some(Watchdog {
                    stop,
                    thread: Some(t),
                })
            }
            Err(e) => {
                error!(error = %e, "Cannot start the health-check thread.");
                None
            }
        }
    }

    /// Ends the thread (within one check interval) and waits for it.
    pub fn stop(mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The loop: check, then `WATCHDOG=1` (only when healthy) and `STATUS=`.
async fn run(
    targets: HealthTargets,
    watchdog: bool,
    every: Duration,
    timeout: Duration,
    stop: Arc<AtomicBool>,
) {
    let tick = Duration::from_millis(50).min(every);
    let mut last: Option<Health> = None;
    while !stop.load(Ordering::Relaxed) {
        let health = check(&targets, timeout).await;
        if stop.load(Ordering::Relaxed) {
            return;
        }
        let line = health.status_line();
        if health.ok() {
            if watchdog {
                notify(&[NotifyState::Watchdog, NotifyState::Status(&line)]);
            } else {
                notify(&[NotifyState::Status(&line)]);
            }
            debug!(status = %line, "Health check passed.");
        } else {
            // No WATCHDOG=1: if this lasts, systemd kills and restarts us.
            notify(&[NotifyState::Status(&line)]);
            error!(
                failed = %health.failed.join(","),
                timeout_ms = timeout.as_millis() as u64,
                "Health check failed: no watchdog ping."
            );
        }
        if last.as_ref().is_some_and(|l| l.ok() != health.ok()) && health.ok() {
            info!("Health check passes again.");
        }
        last = Some(health);
        // Sleep in short steps so a stop is seen quickly.
        let mut slept = Duration::ZERO;
        while slept < every && !stop.load(Ordering::Relaxed) {
            tokio::time::sleep(tick).await;
            slept += tick;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Three checks per watchdog interval, pings bounded by half a check
    /// and by the cap; without a watchdog, status every 10 s.
    #[test]
    fn timing_follows_the_watchdog_interval() {
        let (every, timeout) = check_timing(Some(Duration::from_secs(30)));
        assert_eq!(every, Duration::from_secs(10));
        assert_eq!(timeout, PING_TIMEOUT_MAX);
        let (every, timeout) = check_timing(Some(Duration::from_secs(3)));
        assert_eq!(every, Duration::from_secs(1));
        assert_eq!(timeout, Duration::from_millis(500));
        assert_eq!(check_timing(None).0, STATUS_INTERVAL);
    }

    /// Status lines name the failed targets and every figure.
    #[test]
    fn status_line_format() {
        let mut h = Health {
            failed: vec![],
            outbox_depth: Some(12),
            dead_letters: Some(0),
            pbx: "up",
            crm: "closed",
            role: "",
        };
        assert_eq!(
            h.status_line(),
            "running outbox_depth=12 dead_letters=0 pbx=up crm=closed"
        );
        h.role = "active";
        assert_eq!(
            h.status_line(),
            "running outbox_depth=12 dead_letters=0 pbx=up crm=closed role=active"
        );
        h.failed = vec!["registry", "pbx_gate"];
        h.outbox_depth = None;
        assert_eq!(
            h.status_line(),
            "degraded failed=registry,pbx_gate outbox_depth=unknown dead_letters=0 pbx=up crm=closed role=active"
        );
    }
}
