//! The composition root: the one place the system is assembled.
//!
//! `edgecc run`, `edgecc demo` and the test harnesses all build the
//! system here, from a resolved [`Config`], an open data directory and
//! whatever parts they inject in place of the configured ones (the demo's
//! scripted simulated PBX, a test's clock, a CRM transport, the ARI tests'
//! in-memory outbox):
//!
//! ```text
//! SystemParts::new(config, storage)      what to run on, and where
//!     .with_pbx(..) .with_crm(..) .with_clock(..) .with_sync_seed(..)
//!     .with_outbox(..)
//!     .serve_http(reload) .with_admin_socket(path)
//!     .start().await  -> System           actors, ports, HTTP, admin socket
//! System::shutdown().await                no new calls, HTTP off, records
//!                                         flushed, socket removed, storage closed
//! ```
//!
//! Start-up order, always the same: the CRM transport and the sync worker
//! (so records leave as soon as they are written; the worker on a thread
//! of its own below routing, [`crate::crm::sync_thread`]), the actors' outbox
//! port, the actors' state read back from [`Tree::ActorState`], the PBX
//! adapter, the contact center (restored from that state when there is
//! some, fresh otherwise), the
//! [`PbxGate`] in front of it (every PBX event passes there), then the PBX
//! link and, after a restore, the reconcile of the restored calls with the
//! legs the PBX still has; then HTTP, and the admin socket last: once it
//! answers, everything is up.
//!
//! Every state change of the actors goes through the outbox writer's FIFO
//! behind the CRM records emitted before it, into [`Tree::ActorState`]
//! ([`crate::state_port`]).
//!
//! The parts are plain values until [`SystemParts::start`], so restart
//! recovery can build them from what the data directory holds before
//! anything runs.
//!
//! # Layout
//!
//! - this file — [`SystemParts`], [`System`], [`SystemError`].
//! - [`storage`] — opening the data directory with the config's options,
//!   and [`storage::Tree`], the catalogue of state trees.
//! - [`running`] — [`Running`], the actors' and ports' handles that HTTP
//!   and the tests reach.
//! - [`sticky_import`] — the old `sticky_customers` tree moved into the
//!   actors' sticky book once, before they are restored.

pub mod running;
pub mod sticky_import;
pub mod storage;

use std::path::{Path, PathBuf};
use std::rc::Rc;

use actix::prelude::*;
use edgecc_actors::clock::SharedClock;
use edgecc_actors::durable::StateSnapshot;
use edgecc_actors::ports::SharedOutbox;
use edgecc_actors::registry::{ContactCenter, Registry, Snapshot};
use edgecc_actors::TokioClock;
use edgecc_storage::Storage;
use tracing::{error, info};

use crate::config::{Config, CrmAdapterConfig};
use crate::crm::servicenow::ServiceNowAdapter;
use crate::crm::sync::SyncWorker;
use crate::crm::sync_thread::{self, SyncSetup, SyncStartError, SyncThread};
use crate::crm::webhook::WebhookAdapter;
use crate::crm::CrmAdapter;
use crate::http::{HttpHandle, ReloadHook};
use crate::ops::admin::server::AdminServer;
use crate::outbox_port::StorageOutboxPort;
use crate::pbx::gate::{GetGateStatus, PbxGate, StopTakingCalls};
use crate::pbx::PbxAdapter;
use crate::state_port::{self, TreeStateStore};
pub use running::Running;
use storage::{Tree, TreeError};

/// How long shutdown waits for records the actors produced to reach the
/// durable outbox.
pub const SHUTDOWN_FLUSH_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// Why the system could not start.
#[derive(Debug, thiserror::Error)]
pub enum SystemError {
    /// A state tree of the data directory could not be opened.
    #[error(transparent)]
    Tree(#[from] TreeError),
    /// The CRM adapter's settings are wrong (names the key) or its secret
    /// file cannot be read.
    #[error(transparent)]
    Crm(#[from] crate::crm::AdapterError),
    /// The PBX adapter could not be set up (ARI client settings).
    #[error("pbx: {0}")]
    Pbx(#[from] crate::net::ClientError),
    /// The contact-center configuration was refused by the actors.
    #[error("contact center: {}", .0.join("; "))]
    ContactCenter(Vec<String>),
    /// The CRM sync worker's thread did not start.
    #[error("crm sync: {0}")]
    CrmSync(String),
    /// The HTTP listener could not start (address in use, TLS files).
    #[error("http: {0}")]
    Http(#[from] crate::http::StartError),
    /// The admin socket could not be bound (another daemon answers on it,
    /// or the directory is not writable).
    #[error("cannot bind the admin socket {path}: {source}")]
    AdminSocket {
        /// The socket path.
        path: String,
        /// What the OS said.
        source: std::io::Error,
    },
}

/// Everything the system is built from, before anything runs.
pub struct SystemParts {
    /// What to run: the contact center, the CRM and its sync settings, the
    /// PBX kind, HTTP and its users.
    config: Config,
    /// The open data directory: the outbox and the state trees.
    storage: Storage,
    /// The PBX adapter to drive; `None`: the one `config.pbx` names.
    pbx: Option<PbxAdapter>,
    /// The CRM transport the sync worker delivers through; `None`: the
    /// adapter `config.crm` names (or no sync worker when it names none).
    crm: Option<Rc<dyn CrmAdapter>>,
    /// The domain's clock; `None`: the wall clock, read once at start.
    clock: Option<SharedClock>,
    /// Seed of the sync worker's retry jitter (and of a simulated PBX
    /// built from the config); `None`: the start time in ms.
    seed: Option<u64>,
    /// Serve HTTP on `config.http.listen`, and with which reload hook
    /// (`POST /api/v1/admin/reload`); `None`: no HTTP.
    http: Option<Option<ReloadHook>>,
    /// Where to bind the admin socket; `None`: no admin socket.
    admin_socket: Option<PathBuf>,
    /// Where the actors append their CRM records; `None`: the durable
    /// outbox of `storage`.
    outbox: Option<SharedOutbox>,
}

impl SystemParts {
    /// The parts `config` names, on `storage`: its PBX, its CRM, the wall
    /// clock; no HTTP and no admin socket until asked for.
    pub fn new(config: Config, storage: Storage) -> SystemParts {
        SystemParts {
            config,
            storage,
            pbx: None,
            crm: None,
            clock: None,
            seed: None,
            http: None,
            admin_socket: None,
            outbox: None,
        }
    }

    /// Drives `pbx` instead of the adapter the config names.
    pub fn with_pbx(mut self, pbx: PbxAdapter) -> SystemParts {
        self.pbx = Some(pbx);
        self
    }

    /// Delivers CRM records through `crm` instead of the adapter the
    /// config names.
    pub fn with_crm(mut self, crm: Rc<dyn CrmAdapter>) -> SystemParts {
        self.crm = Some(crm);
        self
    }

    /// Runs the actors on `clock` instead of the wall clock.
    pub fn with_clock(mut self, clock: SharedClock) -> SystemParts {
        self.clock = Some(clock);
        self
    }

    /// Seeds the sync worker's jitter (a reproducible demo).
    pub fn with_sync_seed(mut self, seed: u64) -> SystemParts {
        self.seed = Some(seed);
        self
    }

    /// Serves HTTP on `config.http.listen` (an error at start when it is
    /// not set), with `reload` behind `POST /api/v1/admin/reload`.
    pub fn serve_http(mut self, reload: Option<ReloadHook>) -> SystemParts {
        self.http = Some(reload);
        self
    }

    /// Has the actors append their CRM records to `outbox` instead of the
    /// durable outbox (the ARI tests and bench read them back from memory
    /// as soon as they are written). Everything else is as configured: the
    /// actors' state still goes to the data directory, and a configured
    /// CRM's sync worker delivers what the durable outbox holds.
    pub fn with_outbox(mut self, outbox: SharedOutbox) -> SystemParts {
        self.outbox = Some(outbox);
        self
    }

    /// Binds the admin socket (`edgecc outbox`, `edgecc backup`) at `path`.
    pub fn with_admin_socket(mut self, path: &Path) -> SystemParts {
        self.admin_socket = Some(path.to_path_buf());
        self
    }

    /// Starts the system on the current actix system (see the module
    /// header for the order).
    pub async fn start(self) -> Result<System, SystemError> {
        let SystemParts {
            config,
            storage,
            pbx,
            crm,
            clock,
            seed,
            http,
            admin_socket,
            outbox: injected_outbox,
        } = self;
        let started_ms = crate::clock::now_ms();
        let clock = clock.unwrap_or_else(|| TokioClock::shared(started_ms));
        let seed = seed.unwrap_or(started_ms);
        let outbox = storage.outbox();
        let configured = crm.is_none() && !matches!(config.crm.adapter, CrmAdapterConfig::None);
        let (sync, sync_thread) = if configured && sync_thread::own_thread_wanted() {
            // The configured adapter is built on the worker's own thread,
            // below routing (see `crate::crm::sync_thread`).
            let (adapter, for_adapter) = (config.crm.adapter.clone(), storage.clone());
            let setup = SyncSetup {
                outbox: outbox.clone(),
                adapter: Box::new(move || {
                    crm_from_config(&adapter, &for_adapter)?
                        .ok_or_else(|| SystemError::CrmSync("no CRM adapter".to_string()))
                }),
                epoch_ms: clock.now_ms(),
                config: config.crm.sync.clone(),
                links: Some(Tree::CrmLinks.open(&storage)?),
                seed,
            };
            match sync_thread::start(setup).await {
                Ok((addr, thread)) => (Some(addr), Some(thread)),
                Err(SyncStartError::Adapter(e)) => return Err(e),
                Err(e @ SyncStartError::ThreadGone) => {
                    return Err(SystemError::CrmSync(e.to_string()))
                }
            }
        } else {
            // An injected adapter (not `Send`), or the comparison knob:
            // the worker on the actors' thread.
            let crm = match crm {
                Some(crm) => Some(crm),
                None => crm_from_config(&config.crm.adapter, &storage)?,
            };
            let sync = match crm {
                Some(adapter) => Some(
                    SyncWorker::new(
                        outbox.clone(),
                        adapter,
                        clock.clone(),
                        config.crm.sync.clone(),
                        Some(Tree::CrmLinks.open(&storage)?),
                        seed,
                    )
                    .start(),
                ),
                None => None,
            };
            (sync, None)
        };
        let port: SharedOutbox = match injected_outbox {
            Some(port) => port,
            None => Rc::new(StorageOutboxPort::new(
                outbox,
                sync.clone().map(Addr::recipient),
            )),
        };
        let pbx = match pbx {
            Some(pbx) => pbx,
            None => PbxAdapter::from_kind(&config.pbx, seed).map_err(SystemError::Pbx)?,
        };
        let state_tree = Tree::ActorState.open(&storage)?;
        let legacy_sticky = Tree::StickyCustomers.open(&storage)?;
        if let Err(e) = sticky_import::import(&legacy_sticky, &state_tree, clock.now_ms()).await {
            // Left in place: the next start tries again.
            error!(error = %e, "Old sticky customers could not be imported; kept for the next start.");
        }
        let snapshot = previous_state(&state_tree);
        let reports = crate::reports::live::LiveSettings::new(config.reports.clone());
        let history_pruner = HistoryPruner(actix_rt::spawn(
            crate::reports::history::prune_forever(state_tree.clone(), reports.subscribe()),
        ));
        let registry = ContactCenter::start_durable(
            config.contact_center.clone(),
            pbx.port(),
            port,
            Rc::new(TreeStateStore::new(state_tree, storage.clone())),
            clock,
            snapshot.clone(),
        )
        .map_err(|errors| {
            SystemError::ContactCenter(errors.iter().map(ToString::to_string).collect())
        })?;
        // Every PBX event passes through the gate (link state, shutdown
        // drain); the adapter reports its link state there too.
        let gate = PbxGate::new(registry.clone().recipient()).start();
        pbx.connect(
            gate.clone().recipient(),
            snapshot.as_ref().map(|s| (s, registry.clone().recipient())),
            registry.clone().recipient(),
        )
        .await;
        let (sim, ari) = match pbx {
            PbxAdapter::Sim(sim) => (Some(sim), None),
            PbxAdapter::Ari(ari) => (None, Some(ari)),
        };
        let running = Running {
            registry,
            sync,
            sim,
            ari,
            gate,
            reports,
        };
        let http = match http {
            Some(reload) => {
                Some(crate::http::start(&config, &running, storage.clone(), reload).await?)
            }
            None => None,
        };
        let admin = match admin_socket {
            Some(path) => {
                let server =
                    AdminServer::bind(&path).map_err(|source| SystemError::AdminSocket {
                        path: path.display().to_string(),
                        source,
                    })?;
                let path = server.path().to_path_buf();
                let task = actix_rt::spawn(server.serve(storage.clone()));
                Some(AdminSocket { path, task })
            }
            None => None,
        };
        Ok(System {
            running,
            storage,
            http,
            admin,
            sync_thread,
            history_pruner,
        })
    }
}

/// What the previous run left in `tree`, to restore the system from:
/// `None` for a fresh start (nothing there). Logs what was found.
fn previous_state(tree: &edgecc_storage::StateTree) -> Option<StateSnapshot> {
    let loaded = state_port::read_snapshot(tree);
    if loaded.is_empty() {
        info!(
            skipped = loaded.skipped,
            "No actor state from a previous run; starting fresh."
        );
        return None;
    }
    let s = &loaded.snapshot;
    info!(
        agents = s.agents.len(),
        calls = s.calls.len(),
        queued_calls = s.queues.values().map(Vec::len).sum::<usize>(),
        tokens_reserved_through = s.tokens_reserved_through,
        records = loaded.records,
        skipped = loaded.skipped,
        reason = "restart",
        "Restoring the previous run's agents, calls and queues."
    );
    Some(loaded.snapshot)
}

/// The CRM adapter `adapter` names (`None` for `kind = "none"`).
fn crm_from_config(
    adapter: &CrmAdapterConfig,
    storage: &Storage,
) -> Result<Option<Rc<dyn CrmAdapter>>, SystemError> {
    Ok(match adapter {
        CrmAdapterConfig::None => None,
        CrmAdapterConfig::Webhook(w) => {
            Some(Rc::new(WebhookAdapter::new(w).map_err(SystemError::Crm)?))
        }
        CrmAdapterConfig::Servicenow(s) => Some(Rc::new(
            ServiceNowAdapter::new(s, Tree::CrmSysIds.open(storage)?).map_err(SystemError::Crm)?,
        )),
    })
}

/// The bound admin socket and the task serving it.
struct AdminSocket {
    /// The socket file, removed on shutdown.
    path: PathBuf,
    /// Serves requests until aborted.
    task: actix_rt::task::JoinHandle<()>,
}

/// A started system.
pub struct System {
    /// The actors' and ports' handles.
    pub running: Running,
    /// The data directory; closed (its writer committing what it holds)
    /// when the last handle goes.
    pub storage: Storage,
    /// The HTTP server, when [`SystemParts::serve_http`] asked for one.
    pub http: Option<HttpHandle>,
    /// The admin socket, when one was bound.
    admin: Option<AdminSocket>,
    /// The CRM sync worker's own thread, when it has one: stopped and
    /// joined when the system goes (in order on shutdown; with the
    /// actors' thread after a crash), so no delivery outlives it.
    sync_thread: Option<SyncThread>,
    /// Prunes the call history by age and bytes (`[reports]`); stopped
    /// before the storage closes.
    history_pruner: HistoryPruner,
}

/// The call history's pruning task: aborted when dropped, so it never
/// holds the storage open after the system.
struct HistoryPruner(actix_rt::task::JoinHandle<()>);

impl Drop for HistoryPruner {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl System {
    /// The admin socket's path, when one is bound.
    pub fn admin_socket(&self) -> Option<&Path> {
        self.admin.as_ref().map(|a| a.path.as_path())
    }

    /// Stops in order: no new calls (calls that are up stay up at the PBX,
    /// which carries the media), HTTP off, every record the actors made
    /// into the outbox (bounded by [`SHUTDOWN_FLUSH_WAIT`]), the admin
    /// socket removed, then the actors and the storage dropped.
    pub async fn shutdown(self) {
        let System {
            running,
            storage,
            http,
            admin,
            sync_thread,
            history_pruner,
        } = self;
        drop(history_pruner);
        let _ = running.gate.send(StopTakingCalls).await;
        if let Some(ari) = &running.ari {
            ari.stop_taking_calls();
        }
        if let Some(h) = &http {
            h.stop().await;
        }
        flush_actor_records(&running.registry).await;
        if let Ok(s) = running.gate.send(GetGateStatus).await {
            info!(
                calls_not_taken = s.calls_not_taken,
                "Calls no longer taken while stopping."
            );
        }
        if let Some(admin) = admin {
            admin.task.abort();
            AdminServer::remove_socket(&admin.path);
        }
        drop(running);
        drop(sync_thread);
        drop(storage);
    }
}

/// Waits (bounded) until every record the actors produced is durable in the
/// outbox, and every state change in the state tree, so a clean stop never
/// leaves one only in memory.
pub async fn flush_actor_records(registry: &Addr<Registry>) {
    let deadline = tokio::time::Instant::now() + SHUTDOWN_FLUSH_WAIT;
    loop {
        let pending = registry
            .send(Snapshot { with_queues: false })
            .await
            .map(|s| s.outbox.records_pending + s.outbox.states_pending)
            .unwrap_or(0);
        if pending == 0 {
            return;
        }
        if tokio::time::Instant::now() >= deadline {
            error!(
                pending,
                "Shutdown: records not yet in the outbox after the wait."
            );
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}
