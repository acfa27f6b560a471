//! `edgecc run`: the long-running daemon.
//!
//! Start-up order matters and is the same every time: open and recover the
//! storage (so nothing acknowledged is lost), start the PBX adapter and the
//! actors, bind HTTP, bind the admin socket, tell systemd `READY=1`, then
//! serve until SIGTERM or SIGINT. On shutdown new calls are no longer
//! taken (calls that are up stay up at the PBX), HTTP stops, the actors'
//! records reach the outbox, the admin socket is removed and the storage
//! writer commits what it holds before the process exits.

use std::cell::RefCell;
use std::path::Path;
use std::rc::Rc;

use actix::prelude::*;
use edgecc_actors::registry::{ContactCenter, Registry};
use edgecc_actors::sim::{ConnectEvents, SimPbx, SimPbxPort};
use edgecc_actors::TokioClock;
use edgecc_storage::{Storage, StorageConfig, StorageError};
use tokio::signal::unix::{signal, SignalKind};
use tracing::info;

use crate::admin::server::AdminServer;
use crate::config::{Config, CrmAdapterConfig, PbxKind};
use crate::crm::servicenow::ServiceNowAdapter;
use crate::crm::sync::SyncWorker;
use crate::crm::webhook::WebhookAdapter;
use crate::crm::CrmAdapter;
use crate::outbox_port::StorageOutboxPort;
use crate::pbx_gate::{GetGateStatus, PbxGate, StopTakingCalls};
use crate::systemd::{HealthTargets, Watchdog};

/// Name of the state tree holding CRM links of delivered interactions.
pub const STATE_CRM_LINKS: &str = "crm_links";
/// Name of the state tree holding ServiceNow sys_ids (table mode).
pub const STATE_CRM_SYS_IDS: &str = "crm_sys_ids";

/// Why the daemon could not start or run.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    /// The data directory could not be opened (held by another process,
    /// unreadable, corrupt beyond recovery).
    #[error("cannot open the data directory {dir}: {source}")]
    Storage {
        /// The directory.
        dir: String,
        /// What storage said.
        source: StorageError,
    },
    /// The admin socket could not be bound.
    #[error("cannot bind the admin socket {path}: {source}")]
    AdminSocket {
        /// The socket path.
        path: String,
        /// What the OS said.
        source: std::io::Error,
    },
    /// Signal handlers could not be installed, or the runtime failed.
    #[error("runtime: {0}")]
    Runtime(std::io::Error),
    /// The CRM adapter's settings are wrong (names the key) or its secret
    /// file cannot be read.
    #[error("{0}")]
    Crm(String),
    /// The HTTP listener could not start (address in use, TLS files).
    #[error("http: {0}")]
    Http(String),
    /// The PBX adapter could not be set up (ARI client settings).
    #[error("pbx: {0}")]
    Pbx(String),
    /// The contact-center configuration was refused by the actors.
    #[error("contact center: {0}")]
    ContactCenter(String),
}

/// The running system's main addresses, for the HTTP layer and tests.
pub struct Running {
    /// The contact center's facade.
    pub registry: Addr<Registry>,
    /// The CRM sync worker, when a CRM is configured.
    pub sync: Option<Addr<SyncWorker>>,
    /// The simulated PBX, when `pbx.kind = "sim"` (`None` for `ari`).
    pub sim: Option<Addr<SimPbx>>,
    /// The ARI adapter, when `pbx.kind = "ari"`.
    pub ari: Option<crate::ari::AriPbx>,
}

/// Starts the CRM sync, the PBX adapter and the contact center on the
/// current actix system.
pub fn start_system(config: &Config, storage: &Storage) -> Result<Running, DaemonError> {
    start_system_with_gate(config, storage).map(|(running, _gate)| running)
}

/// [`start_system`], also answering the [`PbxGate`] every PBX event passes
/// through (link state for systemd, draining on shutdown).
pub fn start_system_with_gate(
    config: &Config,
    storage: &Storage,
) -> Result<(Running, Addr<PbxGate>), DaemonError> {
    let clock = TokioClock::shared(crate::clock::now_ms());
    let outbox = storage.outbox();
    let state = |name: &str| {
        storage.state(name).map_err(|source| DaemonError::Storage {
            dir: storage.dir().display().to_string(),
            source,
        })
    };
    let adapter: Option<Rc<dyn CrmAdapter>> = match &config.crm.adapter {
        CrmAdapterConfig::None => None,
        CrmAdapterConfig::Webhook(w) => Some(Rc::new(
            WebhookAdapter::new(w).map_err(|e| DaemonError::Crm(e.to_string()))?,
        )),
        CrmAdapterConfig::Servicenow(s) => Some(Rc::new(
            ServiceNowAdapter::new(s, state(STATE_CRM_SYS_IDS)?)
                .map_err(|e| DaemonError::Crm(e.to_string()))?,
        )),
    };
    let sync = match adapter {
        Some(adapter) => Some(
            SyncWorker::new(
                outbox.clone(),
                adapter,
                clock.clone(),
                config.crm.sync.clone(),
                Some(state(STATE_CRM_LINKS)?),
                crate::clock::now_ms(),
            )
            .start(),
        ),
        None => None,
    };
    let port = StorageOutboxPort::new(outbox, sync.clone().map(Addr::recipient));
    let (pbx, sim, ari): (edgecc_actors::ports::SharedPbx, _, _) = match &config.pbx {
        PbxKind::Sim => {
            let sim = SimPbx::new(crate::clock::now_ms()).start();
            (Rc::new(SimPbxPort { addr: sim.clone() }), Some(sim), None)
        }
        PbxKind::Ari(settings) => {
            let ari = crate::ari::AriPbx::new((**settings).clone())
                .map_err(|e| DaemonError::Pbx(e.to_string()))?;
            (Rc::new(ari.clone()), None, Some(ari))
        }
    };
    let registry = ContactCenter::start(config.contact_center.clone(), pbx, Rc::new(port), clock)
        .map_err(|errors| {
        DaemonError::ContactCenter(
            errors
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("; "),
        )
    })?;
    let gate = PbxGate::new(registry.clone().recipient()).start();
    // Every PBX event passes through the gate (link state, shutdown drain);
    // the simulated PBX and the ARI link report their link state there.
    if let Some(sim) = &sim {
        sim.do_send(ConnectEvents(gate.clone().recipient()));
    }
    if let Some(ari) = &ari {
        // The link task keeps the adapter alive.
        ari.connect_events(gate.clone().recipient());
        ari.start();
    }
    Ok((
        Running {
            registry,
            sync,
            sim,
            ari,
        },
        gate,
    ))
}

/// Storage options from the config.
pub fn storage_config(config: &Config) -> StorageConfig {
    StorageConfig {
        cache_bytes: config.storage_cache_capacity_bytes,
        wal_bytes: config.storage_wal_bytes,
        ..StorageConfig::default()
    }
}

/// Opens the data directory with the config's options.
pub fn open_storage(config: &Config, data_dir: &Path) -> Result<Storage, DaemonError> {
    Storage::open(data_dir, storage_config(config)).map_err(|source| DaemonError::Storage {
        dir: data_dir.display().to_string(),
        source,
    })
}

/// How long shutdown waits for records the actors produced to reach the
/// durable outbox.
pub const SHUTDOWN_FLUSH_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// Waits (bounded) until every record the actors produced is durable in the
/// outbox, so a clean stop never leaves one only in memory.
pub async fn flush_actor_records(registry: &Addr<Registry>) {
    let deadline = tokio::time::Instant::now() + SHUTDOWN_FLUSH_WAIT;
    loop {
        let pending = registry
            .send(edgecc_actors::registry::Snapshot { with_queues: false })
            .await
            .map(|s| s.outbox.records_pending)
            .unwrap_or(0);
        if pending == 0 {
            return;
        }
        if tokio::time::Instant::now() >= deadline {
            tracing::error!(
                pending,
                "Shutdown: records not yet in the outbox after the wait."
            );
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

/// Runs the daemon until SIGTERM or SIGINT.
pub fn run(config: Config, data_dir: &Path, socket: &Path) -> Result<(), DaemonError> {
    let system = actix_rt::System::new();
    system.block_on(async move {
        // Signals first: a SIGTERM during start-up still stops us cleanly.
        let mut term = signal(SignalKind::terminate()).map_err(DaemonError::Runtime)?;
        let mut int = signal(SignalKind::interrupt()).map_err(DaemonError::Runtime)?;
        let mut hup = signal(SignalKind::hangup()).map_err(DaemonError::Runtime)?;
        let storage = open_storage(&config, data_dir)?;
        let (running, gate) = start_system_with_gate(&config, &storage)?;
        // HTTP: the API, the event stream and the UI; reload swaps users
        // and reason codes (other changes need a restart, and say so).
        let control: Rc<RefCell<Option<crate::http::HttpControl>>> = Rc::new(RefCell::new(None));
        let reload: crate::http::ReloadHook = {
            let file = config.file.clone();
            let control = Rc::clone(&control);
            Rc::new(move || {
                let Some(path) = &file else {
                    return Err("started without a config file: nothing to reload".to_string());
                };
                let new = Config::load(path).map_err(|e| e.to_string())?;
                if let Some(c) = control.borrow().as_ref() {
                    c.apply(&new);
                }
                info!(file = %path.display(), "Configuration reloaded: users and reason codes; other changes apply at the next restart.");
                Ok(())
            })
        };
        let http = match config.http.listen {
            Some(_) => {
                let handle = crate::http::start(&config, &running, storage.clone(), Some(Rc::clone(&reload)))
                    .await
                    .map_err(DaemonError::Http)?;
                *control.borrow_mut() = Some(handle.control.clone());
                info!(addr = %handle.local_addr, "HTTP listening.");
                Some(handle)
            }
            None => None,
        };
        // The admin socket last: once it answers, everything is up.
        let admin = AdminServer::bind(socket).map_err(|source| DaemonError::AdminSocket {
            path: socket.display().to_string(),
            source,
        })?;
        let socket_path = admin.path().to_path_buf();
        let admin_task = actix_rt::spawn(admin.serve(storage.clone()));
        info!(
            data_dir = %data_dir.display(),
            admin_socket = %socket_path.display(),
            site_id = %config.site_id,
            "edgecc started."
        );
        // systemd: storage recovered, PBX adapter started, HTTP bound and
        // admin socket answering: READY=1, then the health-check thread.
        let targets = HealthTargets {
            registry: running.registry.clone(),
            gate: gate.clone(),
            sync: running.sync.clone(),
            outbox: storage.outbox(),
            probe: storage.state(crate::systemd::STATE_WATCHDOG).map_err(|source| {
                DaemonError::Storage {
                    dir: data_dir.display().to_string(),
                    source,
                }
            })?,
        };
        let watchdog = if crate::systemd::enabled() {
            let first = crate::systemd::check(&targets, crate::systemd::PING_TIMEOUT_MAX).await;
            crate::systemd::ready(&first.status_line());
            Watchdog::start(targets, sd_notify::watchdog_enabled())
        } else {
            None
        };
        test_hook_wedge_actors();
        loop {
            tokio::select! {
                _ = term.recv() => { info!(signal = "SIGTERM", "Shutting down."); break; }
                _ = int.recv() => { info!(signal = "SIGINT", "Shutting down."); break; }
                _ = hup.recv() => {
                    if let Err(e) = reload() {
                        tracing::error!(error = %e, "Reload refused; the running configuration stays.");
                    }
                }
            }
        }
        // Clean stop: tell systemd, stop taking new calls (calls that are up
        // stay up at the PBX, which carries the media), stop HTTP, get
        // every record the actors made into the outbox, close storage.
        crate::systemd::stopping("stopping: no new calls; flushing the outbox");
        if let Some(w) = watchdog {
            // Joined off this thread: its last check may be waiting on the
            // actors, which live here.
            let _ = tokio::task::spawn_blocking(move || w.stop()).await;
        }
        let _ = gate.send(StopTakingCalls).await;
        if let Some(ari) = &running.ari {
            ari.stop_taking_calls();
        }
        if let Some(h) = &http {
            h.stop().await;
        }
        flush_actor_records(&running.registry).await;
        if let Ok(s) = gate.send(GetGateStatus).await {
            info!(calls_not_taken = s.calls_not_taken, "Calls no longer taken while stopping.");
        }
        admin_task.abort();
        drop(running);
        AdminServer::remove_socket(&socket_path);
        drop(storage);
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
