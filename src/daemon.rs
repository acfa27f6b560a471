//! `edgecc run`: the long-running daemon.
//!
//! Start-up order matters and is the same every time: open and recover the
//! storage (so nothing acknowledged is lost), start the system from the
//! config ([`crate::system`]: the PBX adapter and the actors, HTTP, the
//! admin socket last), tell systemd `READY=1`, then serve until SIGTERM or
//! SIGINT; SIGHUP reloads the config ([`crate::ops::reload`]: queues,
//! agents, routing, timers, reason codes, users). On shutdown systemd hears
//! `STOPPING=1`, the health check ends, and the system stops in its order:
//! new calls are no longer taken (calls that are up stay up at the PBX),
//! HTTP stops, the actors' records reach the outbox, the admin socket is
//! removed and the storage writer commits what it holds before the
//! process exits.

use std::cell::RefCell;
use std::path::Path;
use std::rc::Rc;

use tokio::signal::unix::{signal, SignalKind};
use tracing::info;

use crate::config::Config;
use crate::ops::reload::ReloadTargets;
use crate::ops::systemd::{HealthTargets, Watchdog};
use crate::system::storage::{open_storage, OpenError, Tree, TreeError};
use crate::system::{SystemError, SystemParts};

/// Why the daemon could not start or run.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    /// The data directory could not be opened (held by another process,
    /// unreadable, corrupt beyond recovery).
    #[error(transparent)]
    Storage(#[from] OpenError),
    /// The system could not be assembled or started (CRM or PBX settings,
    /// the contact center, HTTP, the admin socket).
    #[error(transparent)]
    System(#[from] SystemError),
    /// The health check's state tree could not be opened.
    #[error(transparent)]
    Tree(#[from] TreeError),
    /// Signal handlers could not be installed, or the runtime failed.
    #[error("runtime: {0}")]
    Runtime(std::io::Error),
    /// `$EDGECC_HA_ROLE` names no role (a typo in the cluster resource).
    #[error("{0}")]
    HaRole(String),
}

/// Runs the daemon until SIGTERM or SIGINT.
pub fn run(config: Config, data_dir: &Path, socket: &Path) -> Result<(), DaemonError> {
    let runtime = actix_rt::System::new();
    runtime.block_on(async move {
        // Signals first: a SIGTERM during start-up still stops us cleanly.
        let mut term = signal(SignalKind::terminate()).map_err(DaemonError::Runtime)?;
        let mut int = signal(SignalKind::interrupt()).map_err(DaemonError::Runtime)?;
        let mut hup = signal(SignalKind::hangup()).map_err(DaemonError::Runtime)?;
        let role = crate::ops::ha_role::init().map_err(DaemonError::HaRole)?;
        let storage = open_storage(&config, data_dir)?;
        crate::ops::storage_health::log_quarantined(&storage.health());
        let probe = Tree::WatchdogProbe.open(&storage)?;
        // The reload (SIGHUP, the admin API) acts on the actors and HTTP
        // once they run.
        let targets = Rc::new(RefCell::new(ReloadTargets::default()));
        let reload = crate::ops::reload::hook(config.file.clone(), Rc::clone(&targets));
        let site_id = config.site_id.clone();
        let mut parts = SystemParts::new(config.clone(), storage.clone()).with_admin_socket(socket);
        if config.http.listen.is_some() {
            parts = parts.serve_http(Some(Rc::clone(&reload)));
        }
        let system = parts.start().await?;
        targets.borrow_mut().registry = Some(system.running.registry.clone());
        targets.borrow_mut().reports = Some(system.running.reports.clone());
        if let Some(handle) = &system.http {
            targets.borrow_mut().http = Some(handle.control.clone());
            info!(addr = %handle.local_addr, "HTTP listening.");
        }
        info!(
            data_dir = %data_dir.display(),
            admin_socket = %socket.display(),
            site_id = %site_id,
            ha_role = role.as_str(),
            "edgecc started."
        );
        // systemd: storage recovered, PBX adapter started, HTTP bound and
        // admin socket answering: READY=1, then the health-check thread.
        let targets = HealthTargets {
            registry: system.running.registry.clone(),
            gate: system.running.gate.clone(),
            sync: system.running.sync.clone(),
            outbox: storage.outbox(),
            probe,
        };
        drop(storage);
        let watchdog = if crate::ops::systemd::enabled() {
            let first = crate::ops::systemd::check(&targets, crate::ops::systemd::PING_TIMEOUT_MAX).await;
            crate::ops::systemd::ready(&first.status_line());
            Watchdog::start(targets, sd_notify::watchdog_enabled())
        } else {
            drop(targets);
            None
        };
        test_hook_wedge_actors();
        loop {
            tokio::select! {
                _ = term.recv() => { info!(signal = "SIGTERM", "Shutting down."); break; }
                _ = int.recv() => { info!(signal = "SIGINT", "Shutting down."); break; }
                _ = hup.recv() => {
                    if let Err(e) = reload().await {
                        tracing::error!(error = %e, "Reload refused; the running configuration stays.");
                    }
                }
            }
        }
        // Clean stop: tell systemd, then the system stops in its order
        // (no new calls, HTTP off, records flushed, socket removed).
        crate::ops::systemd::stopping("stopping: no new calls; flushing the outbox");
        if let Some(w) = watchdog {
            // Joined off this thread: its last check may be waiting on the
            // actors, which live here.
            let _ = tokio::task::spawn_blocking(move || w.stop()).await;
        }
        system.shutdown().await;
        info!("edgecc stopped.");
        Ok(())
    })
}

/// Test-only (debug builds): with `EDGECC_TEST_ONLY_WEDGE_ACTORS_AFTER_MS`
/// set, blocks the actor system's thread for good after that many ms, as a
/// handler stuck in a loop would, so tests can see the watchdog pings stop.
/// Release builds do not contain it.
fn test_hook_wedge_actors() {
    #[cfg(debug_assertions)]
    if let Some(ms) = std::env::var("EDGECC_TEST_ONLY_WEDGE_ACTORS_AFTER_MS")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
    {
        tracing::warn!(after_ms = ms, "Test hook: the actor system will wedge.");
        actix_rt::spawn(async move {
            tokio::time::sleep(std::time::Duration::from_millis(ms)).await;
            tracing::error!("Test hook: wedging the actor system now.");
            std::thread::sleep(std::time::Duration::from_secs(3600));
        });
    }
}
