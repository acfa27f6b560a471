//! `edgecc run`: the long-running daemon.
//!
//! Start-up order matters and is the same every time: open and recover the
//! storage (so nothing acknowledged is lost), bind the admin socket, then
//! serve until SIGTERM or SIGINT. On shutdown the admin socket is removed
//! and the storage writer commits what it holds before the process exits.

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
}

/// Starts the CRM sync, the PBX adapter and the contact center on the
/// current actix system.
pub fn start_system(config: &Config, storage: &Storage) -> Result<Running, DaemonError> {
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
        CrmAdapterConfig::Webhook(w) => {
            Some(Rc::new(WebhookAdapter::new(w).map_err(DaemonError::Crm)?))
        }
        CrmAdapterConfig::Servicenow(s) => Some(Rc::new(
            ServiceNowAdapter::new(s, state(STATE_CRM_SYS_IDS)?).map_err(DaemonError::Crm)?,
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
            let ari = crate::ari::AriPbx::new((**settings).clone()).map_err(DaemonError::Pbx)?;
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
    if let Some(sim) = &sim {
        sim.do_send(ConnectEvents(registry.clone().recipient()));
    }
    if let Some(ari) = &ari {
        // Events go to the registry; the link task keeps the adapter alive.
        ari.connect_events(registry.clone().recipient());
        ari.start();
    }
    Ok(Running {
        registry,
        sync,
        sim,
    })
}

/// Storage options from the config.
pub fn storage_config(config: &Config) -> StorageConfig {
    StorageConfig {
        cache_bytes: config.storage_cache_capacity_bytes,
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
        let running = start_system(&config, &storage)?;
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
        if let Some(h) = &http {
            h.stop().await;
        }
        flush_actor_records(&running.registry).await;
        admin_task.abort();
        drop(running);
        AdminServer::remove_socket(&socket_path);
        drop(storage);
        info!("edgecc stopped.");
        Ok(())
    })
}
